"""The paper-size network of benchmark 5 and its training step, shared by the CPU script
(``bench_throughput.py``) and the GPU script (``gpu_throughput.py``).

Network: ``SZNNet(FCN32sBackbone(fc_width=4096), embed_dim=20)`` -- FCN-32s on VGG16 with the
embedding head, as stage 1 trains it (random init: throughput does not depend on the weights).
Step: forward, ``cosine_embedding_loss`` over valid pixels, backward, Adam (lr 1e-5).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch.utils.flop_counter import FlopCounterMode

from zss.models import FCN32sBackbone, SZNNet
from zss.models.losses import cosine_embedding_loss

NUM_CLASSES, EMBED_DIM = 21, 20


def build(device: str | torch.device, seed: int = 0) -> tuple[SZNNet, torch.Tensor]:
    """The network and (C, j) class embeddings (longest row norm 1), on ``device``."""
    torch.manual_seed(seed)
    net = SZNNet(FCN32sBackbone(fc_width=4096, weights=None), embed_dim=EMBED_DIM).to(device)
    emb = torch.randn(NUM_CLASSES, EMBED_DIM, device=device)
    return net, emb / emb.norm(dim=1).max()


def batch(n: int, size: int, device: str | torch.device,
          seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random images (n, 3, size, size) and labels in [0, 21) with a void band."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, size, size, generator=g)
    labels = torch.randint(NUM_CLASSES, (n, size, size), generator=g)
    labels[:, :, size // 2 - 4:size // 2 + 4] = 255
    return images.to(device), labels.to(device)


def train_step(net: torch.nn.Module, emb: torch.Tensor, opt: torch.optim.Optimizer,
               autocast_dtype: torch.dtype | None = None) -> Callable:
    """``step(images, labels) -> loss`` (detached): one optimiser step, optionally under
    autocast to ``autocast_dtype`` on the images' device."""

    def step(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with (nullcontext() if autocast_dtype is None
              else torch.autocast(images.device.type, dtype=autocast_dtype)):
            out = net(images)["embedding"]
        loss = cosine_embedding_loss(out.float(), labels, emb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def count_flops(size: int | tuple[int, int], n: int = 1, training: bool = True) -> int:
    """FLOPs of one forward (and, with ``training``, backward) pass of the network on ``n``
    images of ``size`` x ``size`` (or (h, w)), counted on the meta device (nothing is computed) by
    ``torch.utils.flop_counter.FlopCounterMode``: convolutions and matmuls; the loss and the
    optimiser (elementwise) are not counted."""
    net = SZNNet(FCN32sBackbone(fc_width=4096, weights=None), embed_dim=EMBED_DIM).to("meta")
    net.train(training)
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.empty(n, 3, h, w, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, (nullcontext() if training else torch.no_grad()):
        out = net(x)["embedding"]
        if training:
            out.sum().backward()
    return counter.get_total_flops()
