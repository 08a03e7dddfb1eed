"""PPO with the paper's four policy losses on Atari, Procgen and Gymnasium envs.

``config`` (defaults, env table, validation), ``envs`` (batched envs), ``networks``
(IMPALA CNN, MLP), ``ppo`` (the training loop), ``train`` (the CLI:
``python -m scopeloss.rl.train --env NAME --loss LOSS --seed N --out DIR``).
"""
