"""course_utils: the one shared helper package of the chest X-ray course.

Modules (import them explicitly; nothing heavy is imported here):

- ``constants``  label names, CSV layout, figures of the real NIH dataset
- ``paths``      where the course data and the shipped weights live
- ``synth``      the synthetic, NIH-faithful radiograph generator
- ``data``       course CSVs, the real NIH loader, ``load_image``
- ``pipeline``   the tf.data input pipeline
- ``models``     DenseNet121, the shipped course model, ``predict``
- ``metrics``    AUROC per finding, bootstrap confidence intervals
- ``plotting``   figures used by the notebooks (each returns a Figure)
- ``gradcam``    Grad-CAM heatmaps and overlays
- ``checks``     assertion helpers with explanatory messages (notebook tests)
"""
import os as _os

# TensorFlow's C++ log chatter goes to stderr; nbgrader scores a test cell 0
# when it writes to stderr, so silence it before TensorFlow is ever imported.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.3.0"
