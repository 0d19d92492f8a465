"""End to end on real data: the reference CNN learns MNIST from 2,000 images in a few hundred steps."""
import numpy as np
import pytest

import models
from kit.mnist import load_mnist_float
from nn.losses import SoftmaxCrossEntropy
from nn.optim import Adam


@pytest.mark.slow
def test_reference_cnn_learns_real_mnist(mnist_dir):
    images, labels = load_mnist_float(mnist_dir, "train")
    train_x, train_y = images[:2000], labels[:2000]
    held_out_x, held_out_y = images[2000:3000], labels[2000:3000]
    rng = np.random.default_rng(0)
    model = models.build_model("cnn", rng=rng)
    optimizer = Adam(model.network.parameters(), lr=1e-3)
    criterion = SoftmaxCrossEntropy()
    batch, losses = 32, []
    for step in range(300):  # ~4.8 passes over the 2,000 images
        if step % (len(train_x) // batch) == 0:
            order = rng.permutation(len(train_x))
        index = order[(step % (len(train_x) // batch)) * batch:][:batch]
        logits = model.network.forward(model.to_network_input(train_x[index]), training=True)
        losses.append(criterion.forward(logits, train_y[index]))
        model.network.backward(criterion.backward())
        optimizer.step()
    assert np.mean(losses[:10]) > 2.0 and np.mean(losses[-20:]) < 0.5  # it learned, not guessed
    accuracy = float((model.predict(held_out_x) == held_out_y).mean())
    assert accuracy >= 0.90, accuracy
