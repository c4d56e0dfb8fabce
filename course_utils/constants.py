"""Constants shared by the whole course: label names, column layout and the
figures of the real NIH ChestX-ray14 dataset that the synthetic generator
reproduces.

Source of every NIH figure below: computed from the NIH Clinical Center
ChestX-ray14 release (``Data_Entry_2017_v2020.csv``: 112,120 images of 30,805
patients; ``BBox_List_2017.csv``: 984 boxes).  Wang X, Peng Y, Lu L, Lu Z,
Bagheri M, Summers RM. "ChestX-ray8: Hospital-scale Chest X-ray Database and
Benchmarks on Weakly-Supervised Classification and Localization of Common
Thorax Diseases." CVPR 2017.
"""
from __future__ import annotations

#: Label order of the course model's 14 outputs (the original course's order).
LABELS: tuple[str, ...] = (
    "Cardiomegaly", "Emphysema", "Effusion", "Hernia", "Infiltration", "Mass",
    "Nodule", "Atelectasis", "Pneumothorax", "Pleural_Thickening", "Pneumonia",
    "Fibrosis", "Edema", "Consolidation",
)

#: The 14 findings in alphabetical order (the order of the course CSV columns).
CSV_LABELS: tuple[str, ...] = tuple(sorted(LABELS))

#: Exact column layout of the course CSVs (train-small.csv, valid-small.csv,
#: test.csv): ``PatientId`` sits between Nodule and Pleural_Thickening, as in
#: the original course.
CSV_COLUMNS: tuple[str, ...] = (
    ("Image",) + CSV_LABELS[: CSV_LABELS.index("Nodule") + 1] + ("PatientId",)
    + CSV_LABELS[CSV_LABELS.index("Nodule") + 1:]
)

#: Per-image prevalence in NIH ChestX-ray14 (Wang et al. 2017).
NIH_PREVALENCE: dict[str, float] = {
    "Atelectasis": 0.1031, "Cardiomegaly": 0.0248, "Consolidation": 0.0416,
    "Edema": 0.0205, "Effusion": 0.1188, "Emphysema": 0.0224,
    "Fibrosis": 0.0150, "Hernia": 0.0020, "Infiltration": 0.1774,
    "Mass": 0.0516, "Nodule": 0.0565, "Pleural_Thickening": 0.0302,
    "Pneumonia": 0.0128, "Pneumothorax": 0.0473,
}
NIH_NO_FINDING_FRACTION = 0.5384

#: Fraction of NIH images with 0, 1, 2, ... positive labels.
NIH_LABELS_PER_IMAGE: tuple[float, ...] = (
    0.5384, 0.2762, 0.1276, 0.0433, 0.0111, 0.0027, 0.0006, 0.0001)

#: Conditional co-occurrence P(column | row) in percent, rows and columns in
#: CSV_LABELS (alphabetical) order.
NIH_COOCCURRENCE_PCT: tuple[tuple[float, ...], ...] = (
    (100.0, 3.2, 10.6, 1.9, 28.3, 3.7, 1.9, 0.3, 28.2, 6.4, 5.1, 4.3, 2.3, 6.7),
    (13.3, 100.0, 6.1, 4.6, 38.3, 1.6, 1.9, 0.3, 21.1, 3.7, 3.9, 4.0, 1.5, 1.8),
    (26.2, 3.6, 100.0, 3.5, 27.6, 2.2, 1.7, 0.1, 26.2, 13.1, 9.2, 5.4, 2.6, 4.8),
    (9.6, 5.5, 7.0, 100.0, 25.7, 1.3, 0.4, 0.1, 42.6, 5.6, 5.7, 2.8, 14.8, 1.4),
    (24.6, 8.0, 9.7, 4.5, 100.0, 2.7, 1.4, 0.2, 30.0, 9.4, 6.8, 6.4, 2.0, 7.5),
    (16.9, 1.7, 4.1, 1.2, 14.3, 100.0, 1.4, 0.2, 17.8, 8.5, 4.6, 6.0, 0.9, 29.7),
    (13.0, 3.1, 4.7, 0.5, 11.2, 2.1, 100.0, 0.5, 20.5, 6.9, 9.8, 10.4, 0.7, 4.7),
    (17.6, 3.1, 1.8, 1.3, 9.3, 1.8, 3.5, 100.0, 14.5, 11.0, 4.4, 3.5, 1.3, 4.0),
    (16.4, 3.0, 6.1, 4.9, 20.1, 2.3, 1.7, 0.2, 100.0, 5.8, 7.8, 3.8, 3.0, 4.8),
    (12.8, 1.8, 10.5, 2.2, 21.7, 3.7, 2.0, 0.4, 20.0, 100.0, 15.7, 7.8, 1.2, 7.5),
    (9.3, 1.7, 6.8, 2.1, 14.4, 1.8, 2.6, 0.2, 24.4, 14.3, 100.0, 6.5, 1.1, 5.4),
    (14.7, 3.3, 7.4, 1.9, 25.1, 4.5, 5.2, 0.2, 22.2, 13.4, 12.1, 100.0, 1.4, 8.5),
    (18.3, 2.9, 8.6, 23.8, 18.8, 1.6, 0.8, 0.2, 42.3, 5.0, 4.9, 3.4, 100.0, 2.9),
    (14.6, 0.9, 4.2, 0.6, 18.8, 14.1, 1.5, 0.2, 17.8, 8.1, 6.4, 5.5, 0.8, 100.0),
)

#: Images per patient: fraction with exactly one image, quantiles 50/75/90/99,
#: maximum and mean.
NIH_IMAGES_PER_PATIENT = {
    "fraction_single": 0.5682, "q50": 1, "q75": 3, "q90": 8, "q99": 35,
    "max": 184, "mean": 3.64,
}

#: View position mix (AP films are supine/portable studies).
NIH_VIEW_FRACTION = {"PA": 0.6003, "AP": 0.3997}
NIH_SEX_FRACTION = {"M": 0.5649, "F": 0.4351}
NIH_AGE_QUANTILES = {0.05: 18, 0.25: 34, 0.50: 49, 0.75: 59, 0.95: 72}

#: Prevalence by view position: (PA, AP).
NIH_PREVALENCE_BY_VIEW: dict[str, tuple[float, float]] = {
    "Atelectasis": (0.0851, 0.1301), "Cardiomegaly": (0.0232, 0.0271),
    "Consolidation": (0.0226, 0.0702), "Edema": (0.0041, 0.0452),
    "Effusion": (0.0979, 0.1501), "Emphysema": (0.0223, 0.0227),
    "Fibrosis": (0.0209, 0.0062), "Hernia": (0.0029, 0.0008),
    "Infiltration": (0.1390, 0.2352), "Mass": (0.0530, 0.0494),
    "Nodule": (0.0621, 0.0481), "Pleural_Thickening": (0.0359, 0.0216),
    "Pneumonia": (0.0094, 0.0179), "Pneumothorax": (0.0506, 0.0423),
}

#: P(positive on the patient's next image | positive on this image).
NIH_PERSISTENCE: dict[str, float] = {
    "Atelectasis": 0.374, "Cardiomegaly": 0.305, "Consolidation": 0.281,
    "Edema": 0.304, "Effusion": 0.487, "Emphysema": 0.435, "Fibrosis": 0.197,
    "Hernia": 0.465, "Infiltration": 0.388, "Mass": 0.416, "Nodule": 0.319,
    "Pleural_Thickening": 0.234, "Pneumonia": 0.130, "Pneumothorax": 0.556,
}

#: NIH radiologist boxes (BBox_List_2017, fractions of the image side):
#: median width, median height, median centre x, median centre y, and the
#: inter-quartile range of the width.
NIH_BOXES: dict[str, dict[str, float]] = {
    "Atelectasis": dict(w=0.167, h=0.115, cx=0.500, cy=0.572, w_q25=0.125, w_q75=0.240),
    "Cardiomegaly": dict(w=0.466, h=0.373, cx=0.574, cy=0.566, w_q25=0.435, w_q75=0.500),
    "Effusion": dict(w=0.203, h=0.271, cx=0.376, cy=0.560, w_q25=0.153, w_q75=0.259),
    "Infiltration": dict(w=0.222, h=0.259, cx=0.556, cy=0.519, w_q25=0.189, w_q75=0.256),
    "Mass": dict(w=0.117, h=0.138, cx=0.438, cy=0.446, w_q25=0.094, w_q75=0.166),
    "Nodule": dict(w=0.069, h=0.067, cx=0.628, cy=0.467, w_q25=0.053, w_q75=0.085),
    "Pneumonia": dict(w=0.223, h=0.269, cx=0.524, cy=0.556, w_q25=0.185, w_q75=0.258),
    "Pneumothorax": dict(w=0.197, h=0.201, cx=0.340, cy=0.253, w_q25=0.127, w_q75=0.256),
}

#: Positive counts in the original course's train-small.csv (1000 rows).
ORIGINAL_TRAIN_SMALL_COUNTS: dict[str, int] = {
    "Infiltration": 175, "Effusion": 128, "Atelectasis": 106, "Nodule": 54,
    "Mass": 45, "Pneumothorax": 38, "Consolidation": 33,
    "Pleural_Thickening": 21, "Cardiomegaly": 20, "Edema": 16, "Fibrosis": 14,
    "Emphysema": 13, "Pneumonia": 10, "Hernia": 2,
}

#: CheXNet per-finding AUROC on the REAL NIH ChestX-ray14 test set
#: (Rajpurkar et al. 2017, "CheXNet", arXiv:1711.05225; mean 0.841).  A
#: different, real dataset: shown beside the course model's figures for
#: orientation only.
CHEXNET_AUROC: dict[str, float] = {
    "Atelectasis": 0.8094, "Cardiomegaly": 0.9248, "Effusion": 0.8638,
    "Infiltration": 0.7345, "Mass": 0.8676, "Nodule": 0.7802,
    "Pneumonia": 0.7680, "Pneumothorax": 0.8887, "Consolidation": 0.7901,
    "Edema": 0.8878, "Emphysema": 0.9371, "Fibrosis": 0.8047,
    "Pleural_Thickening": 0.8062, "Hernia": 0.9164,
}
