"""A tiny gymnasium env package, as a user would write one: importing it registers `Corridor-v0`.

Train on it with `env_id: corridor_env:Corridor-v0` (gymnasium's `module:EnvId`) or with
`env_packages: [corridor_env]` and `env_id: Corridor-v0`.
"""

import gymnasium as gym

if "Corridor-v0" not in gym.registry:
    gym.register("Corridor-v0", entry_point="corridor_env.corridor:Corridor")
