"""``computed_once``: the values pass through unchanged whichever branch runs, and on the CPU the conditional that
keeps XLA from recomputing them survives compilation (a conditional with identical branches would be simplified
away, and the values recomputed in every consumer again)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from verify.samplers.staging import computed_once


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("token", [0.25, -1.0])
def test_values_pass_through_whichever_branch_runs(dtype, token):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4, 2)), dtype=dtype)
    tree = {"x": x, "y": (x[..., 0] ** 2, jnp.exp(x))}
    out = jax.jit(computed_once)(tree, jnp.asarray(token, dtype=dtype))
    for got, want in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(tree)):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the conditional is inserted on the CPU only")
def test_the_conditional_survives_compilation():
    def f(x, h):
        y = computed_once(jnp.sin(x) * h, h)
        return jnp.sum(y, axis=-1), y[:, ::-1]

    args = (jnp.ones((8, 4)), jnp.asarray(0.5))
    compiled = jax.jit(f).lower(*args).compile().as_text()
    assert "conditional(" in compiled
    np.testing.assert_array_equal(np.asarray(jax.jit(f)(*args)[1]), np.asarray(jnp.sin(args[0]) * 0.5)[:, ::-1])
