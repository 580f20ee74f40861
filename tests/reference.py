"""The textbook DD2424 implementation, written plainly (column vectors, one-hot inputs, np.outer per step).

Tests compare the fast code against these loops; nothing here imports textgen's numeric code.
"""

import numpy as np


def textbook_loss_and_grads(U, W, V, b, c, inputs, targets, h_prev):
    """Summed cross-entropy, gradients dict and last hidden state; b, c, h_prev are 1-D and used as columns."""
    m, K = U.shape
    b, c = b.reshape(m, 1), c.reshape(K, 1)
    hs = {-1: h_prev.reshape(m, 1)}
    xs, ps = {}, {}
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros((K, 1))
        xs[t][inputs[t]] = 1.0
        a = W @ hs[t - 1] + U @ xs[t] + b
        hs[t] = np.tanh(a)
        o = V @ hs[t] + c
        ps[t] = np.exp(o) / np.sum(np.exp(o))
        loss += -np.log(ps[t][targets[t], 0])
    dU, dW, dV = np.zeros_like(U), np.zeros_like(W), np.zeros_like(V)
    db, dc = np.zeros((m, 1)), np.zeros((K, 1))
    dh_next = np.zeros((m, 1))
    for t in reversed(range(len(inputs))):
        g = ps[t].copy()
        g[targets[t]] -= 1.0
        dV += np.outer(g, hs[t])
        dc += g
        dh = V.T @ g + dh_next
        da = dh * (1 - hs[t] ** 2)
        db += da
        dU += np.outer(da, xs[t])
        dW += np.outer(da, hs[t - 1])
        dh_next = W.T @ da
    grads = {"U": dU, "W": dW, "V": dV, "b": db.ravel(), "c": dc.ravel()}
    return loss, grads, hs[len(inputs) - 1].ravel()


def textbook_training(U, W, V, b, c, ids, n_updates, seq_length=25, eta=0.1, eps=1e-8, clip=5.0):
    """The assignment's loop: windows of seq_length, carried h reset each epoch, clip, AdaGrad, smooth loss."""
    params = {"U": U.copy(), "W": W.copy(), "V": V.copy(), "b": b.copy(), "c": c.copy()}
    memory = {name: np.zeros_like(value) for name, value in params.items()}
    m = U.shape[0]
    e, h = 0, np.zeros(m)
    smooth = None
    smooth_losses = []
    for _ in range(n_updates):
        if e + seq_length + 1 > len(ids):
            e, h = 0, np.zeros(m)
        x, y = ids[e : e + seq_length], ids[e + 1 : e + seq_length + 1]
        loss, grads, h = textbook_loss_and_grads(**params, inputs=x, targets=y, h_prev=h)
        smooth = loss if smooth is None else 0.999 * smooth + 0.001 * loss
        smooth_losses.append(smooth)
        for name in params:
            g = np.clip(grads[name], -clip, clip)
            memory[name] += g * g
            params[name] -= eta * g / np.sqrt(memory[name] + eps)
        e += seq_length
    return params, smooth_losses
