#!/usr/bin/env python3
"""The official DiffIR training iteration on CPU, timed: the PyTorch side of bench/train.

    python bench/pytorch/train_step.py --official <checkout of github.com/Zj-BinXia/DiffIR>
        --case deblur|realsr|realsr-s2|gan [--batch 1] [--threads 2] [--warmup 3] [--steps 10]

The networks are the official classes, imported from the user's checkout (never copied here):
`<official>/DiffIR-demotionblur` for `deblur`, `<official>/DiffIR-RealSR` for the others. The
iteration is what the official models' `optimize_parameters` does with the released option
files' losses and optimisers (DiffIRS1Model, DiffIRS2Model in its joint phase, DiffIRGANS2Model),
on random data and random weights (the time does not depend on the values), followed by BasicSR's
`model_ema(0.999)`. Only the pieces of the training stack that are not networks are written here:
the BasicSR losses (L1, KD, GAN, VGG19 perceptual) and USM sharpening, each a few torch calls.

The official files import `basicsr.utils.registry` and `einops`; this script puts small
stand-ins for them (and for PIL and tqdm, imported by `ldm` for sampling and logging only) into
`sys.modules`, so no BasicSR install is needed. numpy is needed for the stage-2 cases: the
official DDPM builds its noise schedule with it.

Progress goes to stderr; the last line on stdout is one JSON object: the case, batch, threads,
torch version, per-step seconds of the timed steps (after the warm-up steps, which include
PyTorch's first-step allocations) with their median, min and max, and the process's peak RSS in
bytes (`resource.getrusage`).
"""
import argparse
import copy
import importlib.machinery
import importlib.util
import json
import os
import resource
import statistics
import sys
import time
import types
import warnings

CASES = {
    # DiffIR-demotionblur/options/train_DiffIRS1.yml
    'deblur': dict(repo='DiffIR-demotionblur', stage=1, gt=128, scale=1, lr=2e-4, betas=(0.9, 0.999),
                   net=dict(n_encoder_res=5, inp_channels=3, out_channels=3, dim=48, num_blocks=[3, 5, 6, 6],
                            num_refinement_blocks=4, heads=[1, 2, 4, 8], ffn_expansion_factor=2, bias=False,
                            LayerNorm_type='WithBias')),
    # DiffIR-RealSR/options/train_DiffIRS1_x4.yml
    'realsr': dict(repo='DiffIR-RealSR', stage=1, gt=256, scale=4, lr=2e-4, betas=(0.9, 0.99)),
    # DiffIR-RealSR/options/train_DiffIRS2_x4.yml, joint phase (iteration >= encoder_iter)
    'realsr-s2': dict(repo='DiffIR-RealSR', stage=2, gt=256, scale=4, lr=2e-4, betas=(0.9, 0.99)),
    # DiffIR-RealSR/options/train_DiffIRS2_GAN_x4.yml
    'gan': dict(repo='DiffIR-RealSR', stage='gan', gt=256, scale=4, lr=1e-4, betas=(0.9, 0.99)),
}
REALSR_NET = dict(n_encoder_res=9, inp_channels=3, out_channels=3, dim=64, num_blocks=[13, 1, 1, 1],
                  num_refinement_blocks=13, heads=[1, 2, 4, 8], ffn_expansion_factor=2.2, bias=False,
                  LayerNorm_type='BiasFree', scale=4)
S2_EXTRA = dict(n_denoise_res=1, linear_start=0.1, linear_end=0.99, timesteps=4)
EMA_DECAY = 0.999


def fail(msg):
    print(f'diffir: {msg}', file=sys.stderr)
    sys.exit(2)


def importable(name):
    return importlib.util.find_spec(name) is not None


def stand_in(name, **attrs):
    """Registers module `name` (and its parents) in sys.modules with the given attributes."""
    parts = name.split('.')
    for i in range(1, len(parts) + 1):
        sub = '.'.join(parts[:i])
        if sub not in sys.modules:
            sys.modules[sub] = types.ModuleType(sub)
            # A spec, as torch._dynamo looks modules up with importlib.util.find_spec.
            sys.modules[sub].__spec__ = importlib.machinery.ModuleSpec(sub, None, is_package=True)
            if i > 1:
                setattr(sys.modules['.'.join(parts[:i - 1])], parts[i - 1], sys.modules[sub])
    sys.modules[name].__dict__.update(attrs)
    return sys.modules[name]


class _Registry:
    """basicsr's Registry without the registry: `@ARCH_REGISTRY.register()` leaves the class as is."""

    def register(self, obj=None):
        return obj if obj is not None else (lambda o: o)


def _rearrange(x, pattern, **k):
    """einops.rearrange for the four patterns of the official transformer blocks."""
    if pattern == 'b c h w -> b (h w) c':
        b, c, h, w = x.shape
        return x.reshape(b, c, h * w).transpose(1, 2)
    if pattern == 'b (h w) c -> b c h w':
        b, n, c = x.shape
        return x.transpose(1, 2).reshape(b, c, k['h'], k['w'])
    if pattern == 'b (head c) h w -> b head c (h w)':
        b, ch, h, w = x.shape
        return x.reshape(b, k['head'], ch // k['head'], h * w)
    if pattern == 'b head c (h w) -> b (head c) h w':
        b, heads, c, n = x.shape
        return x.reshape(b, heads * c, k['h'], k['w'])
    raise NotImplementedError(f'einops stand-in: pattern {pattern!r} (install einops)')


def _not_on_training_path(*a, **k):
    raise NotImplementedError('stand-in for a function outside the training iteration')


def import_official(root, repo, need_numpy):
    """Puts `<root>/<repo>` on sys.path behind the stand-ins and returns the arch modules."""
    base = os.path.join(root, repo)
    arch_dir = os.path.join(base, 'DiffIR', 'archs')
    if not os.path.isfile(os.path.join(arch_dir, 'S1_arch.py')):
        fail(f'--official {root}: no {repo}/DiffIR/archs/S1_arch.py there; pass a clone of '
             'https://github.com/Zj-BinXia/DiffIR')
    if need_numpy and not importable('numpy'):
        fail(f'{sys.executable} has no numpy, which the official DDPM (ldm/ddpm.py) needs for its noise '
             'schedule: pip install numpy in that environment')
    sys.path.insert(0, base)
    stand_in('basicsr.utils.registry', ARCH_REGISTRY=_Registry(), MODEL_REGISTRY=_Registry(), LOSS_REGISTRY=_Registry())
    # The packages DiffIR and DiffIR.archs without their __init__, which imports the whole training stack.
    stand_in('DiffIR', __path__=[os.path.join(base, 'DiffIR')])
    stand_in('DiffIR.archs', __path__=[arch_dir])
    if not importable('einops'):
        stand_in('einops', rearrange=_rearrange, repeat=_not_on_training_path)
    if not importable('PIL'):
        for m in ('Image', 'ImageDraw', 'ImageFont'):
            stand_in(f'PIL.{m}')
    if not importable('tqdm'):
        stand_in('tqdm', tqdm=lambda it=None, *a, **k: it)
    import DiffIR.archs.S1_arch as s1
    archs = types.SimpleNamespace(DiffIRS1=s1.DiffIRS1)
    if need_numpy:
        import DiffIR.archs.S2_arch as s2
        import DiffIR.archs.discriminator_arch as disc
        archs.DiffIRS2 = s2.DiffIRS2
        archs.UNetDiscriminatorSN = disc.UNetDiscriminatorSN
    return archs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--official', required=True, help='checkout of github.com/Zj-BinXia/DiffIR')
    ap.add_argument('--case', default='deblur', choices=sorted(CASES))
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--steps', type=int, default=10)
    a = ap.parse_args()
    if a.batch < 1 or a.threads < 1 or a.warmup < 0 or a.steps < 1:
        fail('--batch, --threads and --steps must be at least 1, --warmup at least 0')
    c = CASES[a.case]
    stage = c['stage']
    archs = import_official(os.path.abspath(a.official), c['repo'], stage != 1)

    # torch warns once when numpy is absent; numpy is not needed for the stage-1 cases.
    warnings.filterwarnings('ignore', message='Failed to initialize NumPy')
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = c.get('net', REALSR_NET)
    gt_size, scale = c['gt'], c['scale']

    if stage == 1:
        net_g = archs.DiffIRS1(**net).train()
    else:
        net_g = archs.DiffIRS2(**net, **S2_EXTRA).train()
        # The frozen stage-1 teacher: built, loaded and put in eval mode, its parameters keep requires_grad.
        model_es1 = archs.DiffIRS1(**net).eval().E
    net_g_ema = copy.deepcopy(net_g).eval()
    opt_g = torch.optim.Adam([p for p in net_g.parameters() if p.requires_grad], lr=c['lr'], weight_decay=0,
                             betas=c['betas'])

    def kd_abs(s1_ipr, s2_ipr, temperature=0.15):
        """KDLoss(loss_weight 1): the KL term is computed (and logged) officially; only the L1 term is trained."""
        F.kl_div(F.log_softmax(s2_ipr / temperature, dim=1), F.softmax(s1_ipr.detach() / temperature, dim=1),
                 reduction='batchmean')
        return F.l1_loss(s2_ipr, s1_ipr.detach())

    if stage == 'gan':
        net_d = archs.UNetDiscriminatorSN(3, num_feat=64, skip_connection=True).train()
        opt_d = torch.optim.Adam(net_d.parameters(), lr=1e-4, weight_decay=0, betas=(0.9, 0.99))
        percep = Perceptual(torch, nn, F)
        usm = UsmSharp(torch, F)

    def iteration():
        gt = torch.rand(a.batch, 3, gt_size, gt_size)
        lq = torch.rand(a.batch, 3, gt_size // scale, gt_size // scale)
        if stage == 1:  # DiffIRS1Model
            opt_g.zero_grad()
            out, _ = net_g(lq, gt)
            loss = F.l1_loss(out, gt)
            loss.backward()
            opt_g.step()
        elif stage == 2:  # DiffIRS2Model, current_iter >= encoder_iter
            _, s1_ipr = model_es1(lq, gt)
            opt_g.zero_grad()
            out, pred_ipr = net_g(lq, s1_ipr[0])
            loss = F.l1_loss(out, gt) + kd_abs(s1_ipr[0], pred_ipr[-1])
            loss.backward()
            opt_g.step()
        else:  # DiffIRGANS2Model: l1_gt_usm, percep_gt_usm true; gan_gt_usm false
            with torch.no_grad():
                gt_usm = usm(gt)
            _, s1_ipr = model_es1(lq, gt_usm)
            for p in net_d.parameters():
                p.requires_grad = False
            opt_g.zero_grad()
            out, pred_ipr = net_g(lq, s1_ipr[0])
            fake = net_d(out)
            loss = (F.l1_loss(out, gt_usm) + kd_abs(s1_ipr[0], pred_ipr[-1]) + percep(out, gt_usm)
                    + F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)))
            loss.backward()
            opt_g.step()
            for p in net_d.parameters():
                p.requires_grad = True
            opt_d.zero_grad()
            real = net_d(gt)
            F.binary_cross_entropy_with_logits(real, torch.ones_like(real)).backward()
            fake = net_d(out.detach().clone())
            F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)).backward()
            opt_d.step()
        with torch.no_grad():  # BasicSR BaseModel.model_ema
            ema = dict(net_g_ema.named_parameters())
            for k, p in net_g.named_parameters():
                ema[k].data.mul_(EMA_DECAY).add_(p.data, alpha=1 - EMA_DECAY)
        return loss.item()

    times = []
    for it in range(1, a.warmup + a.steps + 1):
        t0 = time.perf_counter()
        loss = iteration()
        dt = time.perf_counter() - t0
        if it > a.warmup:
            times.append(dt)
        print(f'pytorch {a.case} batch {a.batch} iter {it}: {dt:.2f} s{" (warm-up)" if it <= a.warmup else ""}, '
              f'loss {loss:.4f}', file=sys.stderr, flush=True)
    print(json.dumps(dict(case=a.case, batch=a.batch, threads=torch.get_num_threads(), torch=torch.__version__,
                          warmup=a.warmup, steps=a.steps, times=[round(t, 4) for t in times],
                          median=statistics.median(times), min=min(times), max=max(times),
                          peakRssBytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)))


def Perceptual(torch, nn, F):
    """BasicSR PerceptualLoss (train_DiffIRS2_GAN_x4.yml): VGG19 features before ReLU up to conv5_4,
    ImageNet input normalisation, L1, layer weights conv1_2 0.1, conv2_2 0.1, conv3_4/4_4/5_4 1; frozen."""
    layers, names, ch = [], {}, 3
    for block, (width, convs) in enumerate([(64, 2), (128, 2), (256, 4), (512, 4), (512, 4)]):
        if block:
            layers.append(nn.MaxPool2d(2, 2))
        for i in range(convs):
            layers += [nn.Conv2d(ch, width, 3, padding=1), nn.ReLU(inplace=True)]
            ch = width
        names[len(layers) - 2] = f'conv{block + 1}_{convs}'
    vgg = nn.Sequential(*layers[:-1]).eval()  # torchvision's vgg19.features[:35]
    for p in vgg.parameters():
        p.requires_grad = False
    weights = {'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1.0, 'conv4_4': 1.0, 'conv5_4': 1.0}
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def features(x):
        x, out = (x - mean) / std, {}
        for i, layer in enumerate(vgg):
            x = layer(x)
            if i in names:
                out[names[i]] = x.clone()  # the next ReLU is in place
        return out

    def loss(x, gt):
        fx, fg = features(x), features(gt.detach())
        return sum(F.l1_loss(fx[k], fg[k]) * weights[k] for k in fx)

    return loss


def UsmSharp(torch, F):
    """BasicSR USMSharp(radius 50 -> 51, sigma 0 as cv2.getGaussianKernel), weight 0.5, threshold 10."""
    k = 51
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    g = torch.exp(-((torch.arange(k) - (k - 1) / 2) ** 2) / (2 * sigma * sigma))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(3, 1, k, k).contiguous()

    def blur(x):
        return F.conv2d(F.pad(x, (k // 2,) * 4, mode='reflect'), kernel, groups=3)

    def sharpen(img, weight=0.5, threshold=10):
        residual = img - blur(img)
        soft_mask = blur((torch.abs(residual) * 255 > threshold).float())
        sharp = torch.clip(img + weight * residual, 0, 1)
        return soft_mask * sharp + (1 - soft_mask) * img

    return sharpen


if __name__ == '__main__':
    main()
