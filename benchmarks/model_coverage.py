"""Which real architectures pareco can slim, side by side with Torch-Pruning on the same list.

For every model (random weights, no downloads): build it, call ``pareco.slim`` as a new user
would (``first call``); if that raises, retry with ``ignored="auto"`` (``auto``); otherwise it is
``refused``. For a slimmed model the table gives the searchable groups, the MACs ratio of the
uniform 0.5 network, and an independent cost check: the exported sub-networks at uniform 0.5 and
at a random width are counted with FlopCounterMode (CPU attention included) and their parameters
counted, and their outputs compared with the slimmable model's; any mismatch is ``WRONG``.

Torch-Pruning (if installed: ``pip install torch==2.13.0 torch-pruning``) prunes 50% of the
channels of the same model with its dependency graph (MetaPruner, L1 magnitude, classifier
ignored); its MACs ratio is measured the same way.

"Really slimmable" means the uniform 0.5 network keeps at most 56% of the full MACs (the
definition of issue #10). torchvision is not importable here (its wheels are CUDA builds), so its
models are not in the list; timm is imported as in ``tests/timm_without_torchvision.py``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/model_coverage.py [--only NAME,...] [--no-tp]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import pareco
from pareco import models as zoo
from pareco.slimming import flop_counter

CLASSES = 10
REALLY = 0.56
EXPORT = False
TP_SECONDS = 120  # Torch-Pruning gets this long per model (it loops on some graphs)


@dataclass
class Case:
    name: str
    source: str  # timm, hf, pareco zoo
    kind: str  # conv or transformer
    build: Callable[[], nn.Module]
    size: int = 64
    kwargs: bool = False  # the model takes its input by keyword (HF): ``key=x``
    key: str = "pixel_values"
    vocab: int = 0  # a text model: x is ``1 x size`` token ids below ``vocab``


def timm_cases() -> list[Case]:
    from timm_without_torchvision import import_timm

    timm = import_timm()
    if timm is None:
        return []

    def make(name: str, **kw) -> Callable[[], nn.Module]:
        return lambda: timm.create_model(name, num_classes=CLASSES, **kw)

    conv = [
        "resnet18", "resnet50", "resnext26ts", "seresnext26d_32x4d", "efficientnet_b0",
        "tf_efficientnet_b0", "efficientnetv2_rw_t", "mobilenetv2_100", "mobilenetv3_large_100",
        "mnasnet_100", "lcnet_050", "ghostnet_100", "densenet121", "dla34", "cspresnet50",
        "cspdarknet53", "res2net50_26w_4s", "resnest14d", "skresnet18", "regnetx_002",
        "regnety_002", "rexnet_100", "mixnet_s", "hrnet_w18_small", "repvgg_a0", "selecsls42b",
        "vgg11", "convnext_atto", "dpn48b", "nf_resnet26", "xception41",
    ]  # fmt: skip
    cases = [Case(f"timm/{n}", "timm", "conv", make(n)) for n in conv]
    cases.append(Case("timm/inception_v3", "timm", "conv", make("inception_v3"), size=96))
    cases += [
        Case("timm/vit_tiny_patch16", "timm", "transformer",
             make("vit_tiny_patch16_224", img_size=64)),
        Case("timm/deit_tiny_patch16", "timm", "transformer",
             make("deit_tiny_patch16_224", img_size=64)),
        Case("timm/mobilevit_xxs", "timm", "transformer", make("mobilevit_xxs")),
        Case("timm/poolformer_s12", "timm", "transformer", make("poolformer_s12")),
    ]  # fmt: skip
    return cases


def hf_cases() -> list[Case]:
    try:
        import transformers as T
    except ImportError:
        return []

    def make(config: Callable, model: Callable) -> Callable[[], nn.Module]:
        return lambda: model(config())

    n = {"num_labels": CLASSES}
    return [
        Case("hf/resnet-50", "hf", "conv",
             make(lambda: T.ResNetConfig(**n), T.ResNetForImageClassification), kwargs=True),
        Case("hf/convnext-tiny", "hf", "conv",
             make(lambda: T.ConvNextConfig(**n), T.ConvNextForImageClassification), kwargs=True),
        Case("hf/regnet-y-040", "hf", "conv",
             make(lambda: T.RegNetConfig(**n), T.RegNetForImageClassification), kwargs=True),
        Case("hf/mobilenet_v2", "hf", "conv",
             make(lambda: T.MobileNetV2Config(image_size=64, **n),
                  T.MobileNetV2ForImageClassification), kwargs=True),
        Case("hf/vit-small", "hf", "transformer",
             make(lambda: T.ViTConfig(image_size=64, hidden_size=384, num_hidden_layers=6,
                                      num_attention_heads=6, intermediate_size=1536, **n),
                  T.ViTForImageClassification), kwargs=True),
        Case("hf/swin-tiny", "hf", "transformer",
             make(lambda: T.SwinConfig(image_size=64, window_size=4, depths=[2, 2, 6],
                                       num_heads=[3, 6, 12], **n),
                  T.SwinForImageClassification), kwargs=True),
        Case("hf/mobilevit-small", "hf", "transformer",
             make(lambda: T.MobileViTConfig(image_size=64, **n),
                  T.MobileViTForImageClassification), kwargs=True),
        # text: BERT-mini-sized encoders and a 4-layer GPT-2, 32 token ids in, classes out
        Case("hf/bert-mini", "hf", "text",
             make(lambda: T.BertConfig(vocab_size=1000, hidden_size=256, num_hidden_layers=4,
                                       num_attention_heads=4, intermediate_size=1024, **n),
                  T.BertForSequenceClassification), 32, True, "input_ids", 1000),
        Case("hf/distilbert-mini", "hf", "text",
             make(lambda: T.DistilBertConfig(vocab_size=1000, dim=256, n_layers=4, n_heads=4,
                                             hidden_dim=1024, **n),
                  T.DistilBertForSequenceClassification), 32, True, "input_ids", 1000),
        Case("hf/gpt2-mini", "hf", "text",
             make(lambda: T.GPT2Config(vocab_size=1000, n_embd=256, n_layer=4, n_head=4,
                                       pad_token_id=0, bos_token_id=1, eos_token_id=1, **n),
                  T.GPT2ForSequenceClassification), 32, True, "input_ids", 1000),
    ]  # fmt: skip


def zoo_cases() -> list[Case]:
    def make(name: str, **kw) -> Callable[[], nn.Module]:
        return lambda: zoo.create(name, num_classes=CLASSES, **kw)

    return [
        Case("pareco/resnet20", "pareco zoo", "conv", make("resnet20"), size=32),
        Case("pareco/resnet18", "pareco zoo", "conv", make("resnet18"), size=64),
        Case("pareco/mobilenetv2", "pareco zoo", "conv", make("mobilenetv2"), size=64),
    ]


@contextlib.contextmanager
def time_limit(seconds: int):
    """Stop a call that runs longer than ``seconds`` (reported as a timeout, not a result)."""

    def stop(signum, frame):
        raise TimeoutError(f"over {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _call(case: Case, module: nn.Module, x: torch.Tensor):
    out = module(**{case.key: x}) if case.kwargs else module(x)
    return out[0] if case.kwargs else out


def _macs(case: Case, module: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad(), flop_counter() as counter:
        _call(case, module, x)
    return counter.get_total_flops() / 2


def run_pareco(case: Case, model: nn.Module, x: torch.Tensor) -> dict:
    example = {"example_kwargs": {case.key: x}} if case.kwargs else {"example_input": x}
    row = {"status": "refused", "groups": 0, "ratio": None, "check": "-", "note": ""}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            net = pareco.slim(model, **example)
            row["status"] = "first call"
        except pareco.SlimError as first:
            try:
                net = pareco.slim(model, **example, ignored="auto")
                row["status"] = "auto"
            except pareco.SlimError as err:
                row["note"] = str(err).splitlines()[0][:90]
                row["first_error"] = str(first).splitlines()[0][:90]
                row["seconds"] = time.perf_counter() - start
                return row
    row["seconds"] = time.perf_counter() - start
    net.eval()
    row["groups"] = net.space.dim
    row["ratio"] = net.cost_ratio(net.space.uniform(0.5)).item() if net.space.dim else 1.0
    row["kept"] = len(net.notes)
    ok = True
    checks = [net.space.uniform(0.5)] if net.space.dim else []
    if net.space.dim:
        checks.append(net.space.sample(1, torch.Generator().manual_seed(0))[0])
    for alpha in checks:
        with torch.no_grad(), net.widths(alpha):
            want = _call(case, net, x)
        sub = net.export(alpha).eval()
        with torch.no_grad():
            got = _call(case, sub, x)
        ok &= net.cost(alpha, "macs").item() == _macs(case, sub, x)
        ok &= net.cost(alpha, "params").item() == sum(p.numel() for p in sub.parameters())
        ok &= bool(torch.allclose(got, want, atol=1e-4, rtol=1e-4))
    row["check"] = "ok" if ok else "WRONG"
    if EXPORT and net.space.dim:
        row["export"] = check_export(case, net.export(net.space.uniform(0.5)).eval(), x)
    return row


def check_export(case: Case, sub: nn.Module, x: torch.Tensor) -> str:
    """Save + load (no pickled classes) and ONNX (onnxruntime), each compared with the sub-net."""
    import tempfile

    import onnxruntime as ort

    from pareco import export

    with torch.no_grad():
        want = _call(case, sub, x)
    done = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            export.save(sub, os.path.join(tmp, "m"))
            loaded = export.load(os.path.join(tmp, "m"))
            with torch.no_grad():
                got = loaded(**{case.key: x})[0] if case.kwargs else loaded(x)
            done.append("load" if torch.allclose(got, want, atol=1e-4, rtol=1e-4) else "load≠")
        except Exception as err:
            done.append(f"save failed ({str(err).splitlines()[0][:40]})")
        try:
            path = export.to_onnx(sub, x, os.path.join(tmp, "m.onnx"))
            out = ort.InferenceSession(path).run(None, {"input": x.numpy()})[0]
            close = torch.allclose(torch.from_numpy(out), want, atol=1e-3, rtol=1e-3)
            done.append("onnx" if close else "onnx≠")
        except Exception as err:
            done.append(f"onnx failed ({str(err).splitlines()[0][:40]})")
    return " + ".join(done)


def run_torch_pruning(case: Case, model: nn.Module, x: torch.Tensor) -> dict:
    try:
        import torch_pruning as tp
    except ImportError:
        return {"tp": "not installed", "tp_ratio": None}
    model = copy.deepcopy(model).eval()
    inputs = {case.key: x} if case.kwargs else x
    try:
        full = _macs(case, model, x)
    except Exception as err:
        return {"tp": f"model fails: {str(err).splitlines()[0][:40]}", "tp_ratio": None}
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == CLASSES]
    heads += [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.out_channels == CLASSES]
    try:
        with warnings.catch_warnings(), time_limit(TP_SECONDS):
            warnings.simplefilter("ignore")
            pruner = tp.pruner.MetaPruner(
                model,
                inputs,
                importance=tp.importance.MagnitudeImportance(p=1),
                pruning_ratio=0.5,
                ignored_layers=heads,
            )
            pruner.step()
            with torch.no_grad():
                out = _call(case, model, x)
        if out.shape[-1] != CLASSES:
            return {"tp": "broken output", "tp_ratio": None}
        return {"tp": "pruned", "tp_ratio": _macs(case, model, x) / full}
    except Exception as err:
        return {"tp": f"error: {str(err).splitlines()[0][:50]}", "tp_ratio": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated model names (substrings)")
    parser.add_argument("--no-tp", action="store_true", help="skip Torch-Pruning")
    parser.add_argument(
        "--export", action="store_true", help="also save/load and ONNX the uniform 0.5 sub-network"
    )
    args = parser.parse_args()
    global EXPORT
    EXPORT = args.export
    torch.set_num_threads(1)
    cases = timm_cases() + hf_cases() + zoo_cases()
    if args.only:
        keys = args.only.split(",")
        cases = [c for c in cases if any(k in c.name for k in keys)]
    print(f"torch {torch.__version__}, {len(cases)} models, inputs N x 3 x S x S with N = 1")
    print()
    print(
        "| model | kind | input | pareco | groups | MACs at 0.5 | kept (notes) | cost check "
        "| Torch-Pruning | TP MACs at 50% ch |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for case in cases:
        torch.manual_seed(0)
        try:
            model = case.build().eval()
        except Exception as err:
            print(f"| {case.name} | {case.kind} | - | build failed: {str(err)[:60]} |||||||")
            continue
        if case.vocab:
            x = torch.randint(1, case.vocab, (1, case.size))
        else:
            x = torch.randn(1, 3, case.size, case.size)
        row = run_pareco(case, model, x)
        if not args.no_tp:
            row.update(run_torch_pruning(case, model, x))
        row["case"] = case
        rows.append(row)
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
        tp_ratio = "-" if row.get("tp_ratio") is None else f"{row['tp_ratio']:.3f}"
        status = row["status"] + (f" ({row['note']})" if row["note"] else "")
        if EXPORT:
            status += f"; export: {row.get('export', '-')}"
        print(f"| {case.name} | {case.kind} | {case.size} | {status} | {row['groups']} | "
              f"{ratio} | {row.get('kept', '-')} | {row['check']} | {row.get('tp', '-')} "
              f"| {tp_ratio} |", flush=True)  # fmt: skip
    summarize(rows, not args.no_tp)


def summarize(rows: list[dict], with_tp: bool) -> None:
    conv = [r for r in rows if r["case"].kind == "conv"]
    first = [r for r in rows if r["status"] == "first call"]
    first_conv = [r for r in conv if r["status"] == "first call"]
    slimmed = [r for r in rows if r["status"] != "refused"]
    really = [r for r in slimmed if r["ratio"] is not None and r["ratio"] <= REALLY]
    wrong = [r for r in slimmed if r["check"] != "ok"]
    print()
    print(f"models: {len(rows)} ({len(conv)} convolutional)")
    print(f"pareco first call: {len(first)}/{len(rows)}; convolutional: {len(first_conv)}/{len(conv)}"
          f" ({100 * len(first_conv) / max(1, len(conv)):.0f}%)")  # fmt: skip
    print(f"pareco with ignored='auto': {len(slimmed) - len(first)}; refused: "
          f"{len(rows) - len(slimmed)}")  # fmt: skip
    print(f"pareco really slimmable (MACs at uniform 0.5 <= {REALLY}): {len(really)}/{len(rows)}")
    print(f"pareco cost check failures (silently wrong): {len(wrong)}")
    if EXPORT:
        exported = [r for r in slimmed if r.get("export") == "load + onnx"]
        print(f"pareco sub-networks saved, loaded and run in ONNX: {len(exported)}/{len(slimmed)}")
    if with_tp:
        pruned = [r for r in rows if r.get("tp") == "pruned"]
        tp_really = [r for r in pruned if r["tp_ratio"] <= REALLY]
        print(f"Torch-Pruning pruned: {len(pruned)}/{len(rows)}; to <= {REALLY} of the MACs: "
              f"{len(tp_really)}/{len(rows)}")  # fmt: skip


if __name__ == "__main__":
    main()
