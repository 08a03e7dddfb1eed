"""The yardstick of issue 21: PPO in the style of purejaxrl (the whole training loop one
jitted XLA program: vmapped gymnax envs, ``lax.scan`` over rollout steps, GAE, epochs and
minibatches) on gymnax's MinAtar Breakout, on this CPU, with purejaxrl's 64-64 tanh MLP or
with our MinAtar CNN (Conv 16 3x3 valid -> ReLU -> Linear 128 -> ReLU -> heads), at our
geometry (8 envs x 64 steps, 4 epochs x 4 minibatches) and the paper's PPO settings.

Not part of the package (JAX is not a dependency); run it in its own environment:

    python3.11 -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install "jax[cpu]" gymnax optax
    taskset -c 0 /tmp/jaxenv/bin/python benchmarks/jax_yardstick.py --net cnn --steps 200000

One core, one XLA thread (the flags below), like our jobs' ``torch_threads 1``. Prints
compile time, then agent steps/s of a second, already compiled run, and the mean return of
the episodes that ended in the last tenth of it. gymnax's MinAtar differs from ours: the
minimal action set, no sticky actions, a 1000-step episode limit.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")

import flax.linen as nn  # noqa: E402
import gymnax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

ENVS, STEPS, EPOCHS, MINIBATCHES = 8, 64, 4, 4
GAMMA, LAMBDA, CLIP, VF_COEF, LR, MAX_NORM = 0.99, 0.95, 0.2, 0.5, 5e-4, 0.5


class ActorCritic(nn.Module):
    actions: int
    net: str

    @nn.compact
    def __call__(self, obs):
        x = obs.astype(jnp.float32)
        if self.net == "cnn":
            x = nn.relu(nn.Conv(16, (3, 3), padding="VALID")(x))
            x = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
            return nn.Dense(self.actions)(x), nn.Dense(1)(x)[:, 0]
        x = x.reshape(x.shape[0], -1)
        pi = nn.tanh(nn.Dense(64)(nn.tanh(nn.Dense(64)(x))))
        v = nn.tanh(nn.Dense(64)(nn.tanh(nn.Dense(64)(x))))
        return nn.Dense(self.actions)(pi), nn.Dense(1)(v)[:, 0]


def make_train(net: str, updates: int):
    env, params = gymnax.make("Breakout-MinAtar")
    model = ActorCritic(env.action_space(params).n, net)
    tx = optax.chain(optax.clip_by_global_norm(MAX_NORM), optax.adam(LR, eps=1e-5))
    vreset = jax.vmap(env.reset, in_axes=(0, None))
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def loss_fn(weights, obs, act, logp_old, adv, ret):
        logits, value = model.apply(weights, obs)
        logp_all = jax.nn.log_softmax(logits)
        logp = jnp.take_along_axis(logp_all, act[:, None], 1)[:, 0]
        ratio = jnp.exp(logp - logp_old)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - CLIP, 1 + CLIP) * adv).mean()
        return pg + VF_COEF * 0.5 * ((value - ret) ** 2).mean()

    def train(key):
        key, k_init, k_env = jax.random.split(key, 3)
        obs, state = vreset(jax.random.split(k_env, ENVS), params)
        weights = model.init(k_init, obs)
        opt = tx.init(weights)

        def update(carry, _):
            weights, opt, obs, state, ep_ret, key = carry

            def env_step(c, _):
                obs, state, ep_ret, key = c
                key, k_act, k_step = jax.random.split(key, 3)
                logits, value = model.apply(weights, obs)
                act = jax.random.categorical(k_act, logits)
                logp = jnp.take_along_axis(jax.nn.log_softmax(logits), act[:, None], 1)[:, 0]
                obs2, state, reward, term, trunc, _ = vstep(jax.random.split(k_step, ENVS),
                                                            state, act, params)
                done = jnp.logical_or(term, trunc)  # gymnax 1.x: both; purejaxrl's "done"
                ep_ret = ep_ret + reward
                finished = jnp.where(done, ep_ret, jnp.nan)
                return (obs2, state, ep_ret * (1 - done), key), (
                    obs, act, logp, value, reward, done, finished)

            (obs, state, ep_ret, key), roll = jax.lax.scan(
                env_step, (obs, state, ep_ret, key), None, STEPS)
            r_obs, r_act, r_logp, r_val, r_rew, r_done, finished = roll
            _, last_val = model.apply(weights, obs)

            def gae(c, t):
                adv_next, v_next = c
                val, rew, done = t
                delta = rew + GAMMA * v_next * (1 - done) - val
                adv = delta + GAMMA * LAMBDA * (1 - done) * adv_next
                return (adv, val), adv

            _, adv = jax.lax.scan(gae, (jnp.zeros(ENVS), last_val),
                                  (r_val, r_rew, r_done.astype(jnp.float32)), reverse=True)
            flat = jax.tree_util.tree_map(lambda a: a.reshape((STEPS * ENVS,) + a.shape[2:]),
                                          (r_obs, r_act, r_logp, adv, adv + r_val))

            def epoch(c, _):
                weights, opt, key = c
                key, k = jax.random.split(key)
                perm = jax.random.permutation(k, STEPS * ENVS).reshape(MINIBATCHES, -1)

                def minibatch(c, idx):
                    weights, opt = c
                    grads = jax.grad(loss_fn)(weights, *[a[idx] for a in flat])
                    upd, opt = tx.update(grads, opt, weights)
                    return (optax.apply_updates(weights, upd), opt), None

                (weights, opt), _ = jax.lax.scan(minibatch, (weights, opt), perm)
                return (weights, opt, key), None

            (weights, opt, key), _ = jax.lax.scan(epoch, (weights, opt, key), None, EPOCHS)
            return (weights, opt, obs, state, ep_ret, key), jnp.nanmean(finished)

        carry = (weights, opt, obs, state, jnp.zeros(ENVS), key)
        _, returns = jax.lax.scan(update, carry, None, updates)
        return returns

    return jax.jit(train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", choices=("mlp", "cnn"), default="cnn")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    updates = args.steps // (ENVS * STEPS)
    train = make_train(args.net, updates)
    t0 = time.perf_counter()
    jax.block_until_ready(train(jax.random.PRNGKey(args.seed)))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    returns = np.asarray(jax.block_until_ready(train(jax.random.PRNGKey(args.seed + 1))))
    run = time.perf_counter() - t0
    steps = updates * ENVS * STEPS
    tail = returns[-max(1, updates // 10):]
    print(f"net {args.net}: {steps} steps; first call (compile + run) {first:.1f} s; "
          f"compiled run {run:.1f} s = {steps / run:,.0f} steps/s; "
          f"return of episodes ending in the last tenth {np.nanmean(tail):.2f} "
          f"(jax {jax.__version__}, gymnax Breakout-MinAtar)")


if __name__ == "__main__":
    main()
