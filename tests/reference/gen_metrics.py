#!/usr/bin/python3
"""Fixtures for tests/test_metrics.c: PSNR/SSIM (RGB and Y) as the official evaluation computes them
(uir/utils/img_utils.py + test.py, reference §8), reimplemented with numpy/scipy. cv2.filter2D's default border
is BORDER_REFLECT_101 = scipy 'mirror'; the valid crop removes every pixel it touches anyway.
Run from the repo root: /usr/bin/python3 tests/reference/gen_metrics.py"""
import struct
import numpy as np
from scipy.ndimage import correlate


def gaussian_window():
    x = np.arange(11) - 5.0
    k = np.exp(-x * x / (2 * 1.5 * 1.5))
    k /= k.sum()                      # cv2.getGaussianKernel(11, 1.5)
    return np.outer(k, k)


def ssim_plane(a, b):
    C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = a.astype(np.float64), b.astype(np.float64)
    w = gaussian_window()
    f = lambda x: correlate(x, w, mode="mirror")[5:-5, 5:-5]
    mu1, mu2 = f(a), f(b)
    s11, s22, s12 = f(a * a) - mu1 ** 2, f(b * b) - mu2 ** 2, f(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1 ** 2 + mu2 ** 2 + C1) * (s11 + s22 + C2))
    return m.mean()


def ssim(a, b):
    if a.ndim == 2:
        return ssim_plane(a, b)
    return np.mean([ssim_plane(a[:, :, i], b[:, :, i]) for i in range(a.shape[2])])


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 20 * np.log10(255.0 / np.sqrt(mse))


def y_of(rgb_u8):
    """bgr2ycbcr(img / 255., only_y=True) * 255 with img in BGR order = weights applied to R, G, B here."""
    x = rgb_u8.astype(np.float64)
    return x @ np.array([65.481, 128.553, 24.966]) / 255.0 + 16.0


def crop(x, c):
    return x if c == 0 else x[c:-c, c:-c]


def main():
    rng = np.random.default_rng(8)
    cases = []
    h, w = 40, 48
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 5 + yy * 2) % 256, (yy * 6) % 256, (xx * yy) % 256], -1).astype(np.float64)
    gt = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).round().astype(np.uint8)
    for sigma, cb in [(3, 4), (20, 4), (60, 0), (8, 2)]:
        pred = np.clip(gt + rng.normal(0, sigma, gt.shape), 0, 255).round().astype(np.uint8)
        cases.append((gt, pred, cb))
    g1 = gt[:, :, 1]
    cases.append((g1[:, :, None], np.clip(g1 + rng.normal(0, 15, g1.shape), 0, 255).round().astype(np.uint8)[:, :, None], 4))
    with open("tests/fixtures/metrics_cases.bin", "wb") as f:
        f.write(struct.pack("<i", len(cases)))
        for gt_, pred, cb in cases:
            hh, ww, c = gt_.shape
            a, b = crop(gt_, cb), crop(pred, cb)
            if c == 3:
                ya, yb = crop(y_of(gt_), cb), crop(y_of(pred), cb)
                vals = (psnr(a, b), ssim(a, b), psnr(ya, yb), ssim(ya, yb))
            else:
                vals = (psnr(a, b), ssim(a[:, :, 0], b[:, :, 0]), psnr(a, b), ssim(a[:, :, 0], b[:, :, 0]))
            f.write(struct.pack("<4i", ww, hh, c, cb))
            f.write(gt_.tobytes())
            f.write(pred.tobytes())
            f.write(struct.pack("<4d", *vals))
            print(ww, hh, c, cb, vals)


if __name__ == "__main__":
    main()
