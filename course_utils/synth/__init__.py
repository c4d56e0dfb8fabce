"""Synthetic, NIH-faithful chest radiographs (issue 3).

Modules (import them explicitly; nothing heavy is imported here):

- ``anatomy``  stable per-patient anatomy (``sample_anatomy``)
- ``render``   anatomy + findings -> image, lesion boxes, masks (``render_image``)
- ``labels``   patients, images per patient, views, labels with NIH prevalence,
               co-occurrence and within-patient persistence; the course splits,
               the pool and the pretraining corpus
- ``dataset``  writes the PNGs, the course CSVs, ``metadata.csv``,
               ``BBox_List_2017.csv`` and ``MANIFEST.sha256`` (multiprocessing)
- ``cli``      the ``data`` command: ``python -m course_utils data --out DIR``

Every statistical target comes from NIH ChestX-ray14 (Wang et al., "ChestX-ray8",
CVPR 2017), see ``course_utils.constants``.
"""
