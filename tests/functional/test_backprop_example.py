"""The course's backprop example: f(x, y, z) = (x + y) * z at x = -2, y = 5, z = -4.

Forward: q = x + y = 3, f = q * z = -12. Backward by the chain rule:
df/dz = q = 3, df/dq = z = -4, and the add gate copies it: df/dx = df/dy = -4.
"""
import jax
import jax.numpy as jnp
import pytest


def add_gate(x, y):
    return x + y


def multiply_gate(q, z):
    return q * z


def f(x, y, z):
    return multiply_gate(add_gate(x, y), z)


X, Y, Z = -2.0, 5.0, -4.0


def test_forward_values():
    q = add_gate(jnp.float32(X), jnp.float32(Y))
    assert q == 3.0
    assert multiply_gate(q, jnp.float32(Z)) == -12.0
    assert f(X, Y, Z) == -12.0


def test_gradients_from_jax_grad_match_the_hand_derivation():
    grads = jax.grad(f, argnums=(0, 1, 2))(X, Y, Z)
    assert tuple(float(g) for g in grads) == (-4.0, -4.0, 3.0)
    # The same through the two gates separately: the upstream gradient of q is z,
    # and the add gate distributes it unchanged to both inputs.
    q, add_vjp = jax.vjp(add_gate, X, Y)
    value, multiply_vjp = jax.vjp(multiply_gate, q, Z)
    dq, dz = multiply_vjp(1.0)  # df/df = 1 at the output
    dx, dy = add_vjp(dq)
    assert (float(q), float(value)) == (3.0, -12.0)
    assert (float(dq), float(dz), float(dx), float(dy)) == (-4.0, 3.0, -4.0, -4.0)


def test_jit_gives_the_same_forward_and_gradients():
    value, grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))(X, Y, Z)
    assert float(value) == -12.0
    assert [float(g) for g in grads] == pytest.approx([-4.0, -4.0, 3.0])
