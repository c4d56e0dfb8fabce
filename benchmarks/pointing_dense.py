"""Diagnostic: is the pointing game limited by the Grad-CAM map's resolution or by the model?

    .venv/bin/python benchmarks/pointing_dense.py [--layer relu --layer conv4_block24_concat]

At 128 px the course DenseNet121's last feature map (``relu``) is 4 x 4 and most test boxes
lie between its cells' centres (``course evaluate``'s "reachable" column).  This script runs
the **same weights** with the last two downsamplings removed (shift-and-stitch, Long et al.
2015, "Fully Convolutional Networks"): the transitions ``pool3``/``pool4`` keep stride 1,
``pool4`` averages every second position, and the 3 x 3 convolutions after them are dilated
by 2 and 4.  On the original lattice the feature maps are exactly the original ones (checked
and printed); in between they are the original network's maps of the image shifted by a
few pixels.  Every feature map after ``pool3`` is then 4 times finer (``relu`` 16 x 16,
``conv4_block24_concat`` 16 x 16 at 128 px), so almost every box becomes reachable, and the
script plays the pointing game with Grad-CAM on it.  If the hits do not rise, the map's
resolution was not what limited them.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def _dilated_average_pooling(spacing: int):
    import keras

    class DilatedAveragePooling2D(keras.layers.Layer):
        """2 x 2 average pooling, stride 1, of the positions ``spacing`` apart."""

        def call(self, x):
            d = spacing
            padded = keras.ops.pad(x, [[0, 0], [0, d], [0, d], [0, 0]], mode="symmetric")
            h, w = x.shape[1], x.shape[2]
            return 0.25 * (padded[:, :h, :w] + padded[:, d:d + h, :w]
                           + padded[:, :h, d:d + w] + padded[:, d:d + h, d:d + w])

    return DilatedAveragePooling2D


def shift_and_stitch(model):
    """The course DenseNet121 with ``pool3``/``pool4`` at stride 1 and later convolutions
    dilated: same weights, feature maps after ``pool3`` 4 times finer."""
    import keras

    dilation = {"conv4": 2, "conv5": 4}

    def clone(layer):
        config = layer.get_config()
        stage = layer.name.split("_")[0]
        if layer.name == "pool3_pool":
            config.update(strides=(1, 1), padding="same")
        elif layer.name == "pool4_pool":
            return _dilated_average_pooling(2)(name=layer.name)
        elif (isinstance(layer, keras.layers.Conv2D) and tuple(config["kernel_size"]) == (3, 3)
              and stage in dilation):
            config.update(dilation_rate=(dilation[stage],) * 2)
        return layer.__class__.from_config(config)

    dense = keras.models.clone_model(model, clone_function=clone)
    dense.set_weights(model.get_weights())
    dense.course_metadata = model.course_metadata
    return dense


def main(argv=None) -> int:
    import keras

    from course_utils.data import load_image
    from course_utils.evaluate import play_pointing_game, pointing_boxes
    from course_utils.models import load_course_model
    from course_utils.paths import data_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", action="append", default=None)
    parser.add_argument("--data", default=None)
    args = parser.parse_args(argv)
    layers = args.layer or ["relu", "conv4_block24_concat"]
    data = data_dir(args.data)
    model = load_course_model()
    meta, size = model.course_metadata, int(model.course_metadata["input_size"])
    dense = shift_and_stitch(model)

    test_df = pd.read_csv(data / "test.csv")
    x = np.stack([load_image(data / "images" / name, size=size, mean=meta["mean"], std=meta["std"])
                  for name in test_df["Image"][:8]])
    for layer in layers:
        a = keras.Model(model.input, model.get_layer(layer).output).predict(x, verbose=0)
        b = keras.Model(dense.input, dense.get_layer(layer).output).predict(x, verbose=0)
        step = b.shape[1] // a.shape[1]
        print(f"{layer}: {a.shape[1]}x{a.shape[2]} -> {b.shape[1]}x{b.shape[2]}; on the original lattice "
              f"max |difference| {np.abs(b[:, ::step, ::step] - a).max():.2e} (largest value {np.abs(a).max():.1f})")
    p_a, p_b = model.predict(x, verbose=0), dense.predict(x, verbose=0)
    print(f"probabilities (8 test images): max |difference| {np.abs(p_a - p_b).max():.3f} "
          f"(global pooling now averages the shifted positions too)")

    boxes = pointing_boxes(data, test_df["Image"])
    start = time.perf_counter()
    results = {name: play_pointing_game(net, layers, boxes, data / "images")
               for name, net in (("original", model), ("shift-and-stitch", dense))}
    print(f"pointing game on {len(boxes)} test boxes ({time.perf_counter() - start:.0f} s); hits / boxes "
          f"(reachable at that map's resolution):")
    for name, by_layer in results.items():
        for layer, by_finding in by_layer.items():
            total = sum(v["hits"] for v in by_finding.values())
            print(f"  {name:>16} {layer:>22}: " + ", ".join(
                f"{f} {v['hits']}/{v['boxes']} ({v['reachable']})" for f, v in by_finding.items())
                + f"; all {total}/{len(boxes)} = {total / max(len(boxes), 1):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
