"""An independent judge of generated digits, which no solver sees.

The judge is a scikit-learn pipeline fitted on the training part of the digits split
(``diffguide.data.digits``): 16x16 images in [-1, 1], flattened, projected on their
first ``COMPONENTS`` principal components and whitened (unit variance per component
on the training set), then an RBF support-vector classifier. It shares neither data
split, architecture nor training with the CNN classifiers that guide the solvers. It
is fitted once per process (well under a second, no weights shipped) and held-out
accuracy is about 99%.

- ``judge_accuracy(samples, labels)``: the fraction of samples the SVC classifies as
  requested.
- ``kernel_distance(a, b)``: the KID-style distance (Binkowski et al., ICLR 2018):
  the unbiased estimate of the squared maximum mean discrepancy
  ``MMD^2 = E k(a, a') + E k(b, b') - 2 E k(a, b)`` with the cubic polynomial kernel
  ``k(u, v) = (u . v / d + 1)^3`` on the judge's features: the ``d = COMPONENTS``
  whitened PCA coordinates that the SVC classifies. It is 0 in expectation for two
  sets from the same distribution and may come out slightly negative.
- ``kernel_distance_floor(reference)``: the same distance between two disjoint halves
  of a set of real images, the value a perfect sampler would get up to sample noise.
- ``precision_recall(samples, real, k)``: improved precision and recall (Kynkaanniemi et al.,
  NeurIPS 2019) in the judge's features: each set's manifold is the union of balls around its
  points with radius the distance to their ``k``-th nearest neighbour; precision is the fraction
  of samples inside the real manifold (fidelity), recall the fraction of real images inside the
  samples' manifold (coverage).
- ``diversity(images)``: the mean distance between two different images in the judge's features.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

COMPONENTS = 32
SVC_C = 10.0


@functools.lru_cache(maxsize=1)
def judge():
    """The fitted pipeline (PCA with whitening, then an RBF SVC), fitted on the digits train split once."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    from ..data.digits import digits_train

    images, labels = digits_train()
    pipeline = make_pipeline(PCA(COMPONENTS, whiten=True, random_state=0), SVC(C=SVC_C, kernel="rbf", gamma="scale"))
    return pipeline.fit(_flat(images), labels.numpy())


def _flat(images: torch.Tensor) -> np.ndarray:
    if tuple(images.shape[1:]) != (1, 16, 16):
        raise ValueError(f"the digits judge takes (N, 1, 16, 16) images in [-1, 1], got shape {tuple(images.shape)}")
    return images.detach().cpu().to(torch.float64).flatten(1).numpy()


def judge_predict(images: torch.Tensor) -> torch.Tensor:
    """The judge's class (0-9) for each image, (N,) int64."""
    return torch.as_tensor(judge().predict(_flat(images)), dtype=torch.int64)


def judge_accuracy(samples: torch.Tensor, labels: int | torch.Tensor) -> float:
    """Fraction of ``samples`` (N, 1, 16, 16) the judge classifies as ``labels`` (an int or (N,))."""
    labels = torch.as_tensor(labels, dtype=torch.int64).expand(samples.shape[0])
    return float((judge_predict(samples) == labels).double().mean())


def judge_features(images: torch.Tensor) -> torch.Tensor:
    """The judge's whitened PCA coordinates, (N, COMPONENTS) float64: the SVC's input."""
    pca = judge().steps[0][1]
    return torch.as_tensor(pca.transform(_flat(images)), dtype=torch.float64)


def _polynomial_kernel(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u @ v.T / u.shape[1] + 1) ** 3


def kernel_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Unbiased MMD^2 between image sets ``a`` and ``b`` (each at least 2 images) in the judge's feature space."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"the kernel distance needs at least 2 images per set, got {len(a)} and {len(b)}")
    fa, fb = judge_features(a), judge_features(b)
    m, n = len(fa), len(fb)
    kaa, kbb = _polynomial_kernel(fa, fa), _polynomial_kernel(fb, fb)
    within_a = (kaa.sum() - kaa.diagonal().sum()) / (m * (m - 1))  # i != j terms only: unbiased
    within_b = (kbb.sum() - kbb.diagonal().sum()) / (n * (n - 1))
    return float(within_a + within_b - 2 * _polynomial_kernel(fa, fb).mean())


def kernel_distance_floor(reference: torch.Tensor) -> float:
    """The kernel distance between the even- and odd-indexed halves of ``reference`` (real images)."""
    return kernel_distance(reference[0::2], reference[1::2])


def precision_recall(samples: torch.Tensor, real: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of ``samples`` against ``real`` in the judge's features (module docstring)."""
    if len(samples) <= k or len(real) <= k:
        raise ValueError(f"precision and recall with k = {k} need more than {k} images per set, "
                         f"got {len(samples)} and {len(real)}")
    fs, fr = judge_features(samples), judge_features(real)

    def covered(points: torch.Tensor, manifold: torch.Tensor) -> float:
        radii = torch.cdist(manifold, manifold).kthvalue(k + 1, dim=1).values  # the 0th neighbour is the point itself
        return float((torch.cdist(points, manifold) <= radii[None]).any(dim=1).double().mean())

    return covered(fs, fr), covered(fr, fs)


def diversity(images: torch.Tensor) -> float:
    """Mean distance between two different images of ``images`` (at least 2) in the judge's features."""
    if len(images) < 2:
        raise ValueError(f"diversity needs at least 2 images, got {len(images)}")
    distances = torch.cdist(*(judge_features(images),) * 2)
    return float(distances.sum() / (len(images) * (len(images) - 1)))
