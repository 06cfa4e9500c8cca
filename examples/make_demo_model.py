"""Writes a small image classifier as the v0.7 file set (saved_model.pb, variables.*, mean.npy) and a picture."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--size", type=int, default=64, help="input width and height")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    tf.keras.utils.set_random_seed(7)
    inputs = tf.keras.Input(shape=(args.size, args.size, 3), name="image")
    x = tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D(name="features")(x)
    outputs = tf.keras.layers.Dense(4, activation="softmax", name="probabilities")(x)
    model = tf.keras.Model(inputs, outputs, name="demo_classifier")

    saved = args.folder / "saved_model"
    shutil.rmtree(saved, ignore_errors=True)
    # Keras 3's serving export, its signature naming the input and output as the layers are named
    # ("image", "probabilities"; model.export() alone would say "output_0").
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=lambda image: {"probabilities": model(image, training=False)},
        input_signature=[tf.TensorSpec((None, args.size, args.size, 3), tf.float32, name="image")],
    )
    archive.write_out(str(saved), verbose=False)
    # The v0.7 file set is flat: saved_model.pb beside variables.index and variables.data-*.
    shutil.copy(saved / "saved_model.pb", args.folder / "saved_model.pb")
    for variables_file in (saved / "variables").iterdir():
        shutil.copy(variables_file, args.folder / variables_file.name)
    with open(args.folder / "mean.npy", "wb") as handle:
        np.save(handle, np.array([[[0.485, 0.456, 0.406]]], dtype=np.float32), allow_pickle=False)
    shutil.rmtree(saved)
    # A picture to send for inference: a gradient with a disc, saved as a JPEG.
    from PIL import Image, ImageDraw

    picture = Image.linear_gradient("L").resize((320, 240)).convert("RGB")
    ImageDraw.Draw(picture).ellipse((100, 60, 220, 180), fill=(200, 40, 40))
    picture.save(args.folder / "example.jpg", quality=90)
    print("\n".join(sorted(path.name for path in args.folder.iterdir())))


if __name__ == "__main__":
    main()
