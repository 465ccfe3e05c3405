"""K-SVD image denoising (Elad & Aharon 2006) on scikit-image's ``camera()`` photograph.

Adds white Gaussian noise of σ = 15, 25, 50 (pixel range [0, 255], fixed seed) and denoises
with :func:`mlcsc.learning.ksvd_denoise`, the paper's settings: 8 × 8 patches, 256 atoms,
OMP error target 1.15·σ·8, λ = 30/σ, every overlapping patch coded. Prints a table of input
and output PSNR, and the time, for

* ``DCT``: the fixed overcomplete DCT dictionary the learning starts from (``n_iter = 0``);
* ``K-SVD``: the dictionary learned by K-SVD on the noisy image itself.

By default the full 512 × 512 image is denoised (all 255,025 overlapping patches are coded)
and K-SVD runs 10 iterations on a random subset of 40,000 of them; the three noise levels took
1.5–3 minutes on one core of a 2-core Xeon (2.8 GHz) shared with other jobs. ``--size 256``
denoises the central 256 × 256 crop instead.

Torch runs on one thread by default: the work is a long sequence of small operations (OMP on
chunks of a few hundred patches, one SVD per atom), and on a machine whose cores were shared
with other processes two threads were measured > 7× slower than one (σ = 25 on the 256 × 256
crop: 169 s against 22 s). ``--threads`` changes it.

    python benchmarks/ksvd_denoising.py [--size 512] [--n-iter 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from bench_utils import cpu_model  # benchmarks/ is the script's directory
from skimage.data import camera

from mlcsc.learning import ksvd_denoise, psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="central crop side (512: all)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15.0, 25.0, 50.0])
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--num-atoms", type=int, default=256)
    parser.add_argument("--n-iter", type=int, default=10, help="K-SVD iterations")
    parser.add_argument("--train", type=int, default=40_000, help="max training patches")
    parser.add_argument("--stride", type=int, default=1, help="patch grid step")
    parser.add_argument("--approximate", action="store_true", help="approximate K-SVD")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    image = torch.from_numpy(camera()).to(torch.float64)  # (512, 512) in [0, 255]
    top = (image.shape[0] - args.size) // 2
    left = (image.shape[1] - args.size) // 2
    clean = image[top : top + args.size, left : left + args.size].contiguous()

    print("K-SVD denoising (Elad & Aharon 2006) of skimage.data.camera()")
    print(f"  machine : {cpu_model()}, {os.cpu_count()} cores, torch threads {args.threads}")
    print(f"  software: Python {platform.python_version()}, torch {torch.__version__}")
    region = "the full" if args.size >= 512 else f"the {args.size}×{args.size} central crop of the"
    print(f"  image   : {region} 512×512 image, pixel range [0, 255]")
    print(
        f"  settings: {args.patch_size}×{args.patch_size} patches, stride {args.stride}, "
        f"{args.num_atoms} atoms (overcomplete DCT init), {args.n_iter} "
        f"{'approximate ' if args.approximate else ''}K-SVD iterations on ≤ {args.train:,} "
        f"patches, OMP to 1.15·σ·{args.patch_size}, λ = 30/σ, {args.dtype}, {args.device}, "
        f"noise seed {args.seed}"
    )
    print()
    header = (
        "|   σ | input PSNR | DCT PSNR | DCT time | K-SVD PSNR | K-SVD gain | K-SVD time "
        "| atoms/patch |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for sigma in args.sigmas:
        generator = torch.Generator().manual_seed(args.seed)
        noisy = clean + sigma * torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
        noisy = noisy.to(dtype=dtype, device=args.device)
        options = {
            "patch_size": args.patch_size,
            "num_atoms": args.num_atoms,
            "stride": args.stride,
            "max_train_patches": args.train,
            "approximate": args.approximate,
            "progress": False,
            "return_details": True,
        }
        start = time.perf_counter()
        dct = ksvd_denoise(noisy, sigma, n_iter=0, **options)
        dct_time = time.perf_counter() - start
        start = time.perf_counter()
        learned = ksvd_denoise(
            noisy,
            sigma,
            n_iter=args.n_iter,
            generator=torch.Generator(device=args.device).manual_seed(args.seed),
            **options,
        )
        ksvd_time = time.perf_counter() - start
        reference = clean.to(device=args.device)
        before = psnr(noisy.double(), reference)
        after_dct = psnr(dct.image.double(), reference)
        after = psnr(learned.image.double(), reference)
        print(
            f"| {sigma:3.0f} | {before:7.2f} dB | {after_dct:5.2f} dB | {dct_time:6.1f} s "
            f"| {after:7.2f} dB | {after - before:+7.2f} dB | {ksvd_time:8.1f} s "
            f"| {learned.mean_atoms:11.2f} |"
        )


if __name__ == "__main__":
    main()
