#!/usr/bin/env python3
"""Builds the bot's SDXL-Lightning model folder (models/README.md "Layout") by exporting the models to ONNX.

What it does, for each requested step count N (1, 2, 4, 8):
  1. loads `stabilityai/stable-diffusion-xl-base-1.0` with diffusers (fp32 for --dtype fp32, fp16 for --dtype fp16),
     puts the ByteDance/SDXL-Lightning UNet weights for N steps into it (`sdxl_lightning_1step_unet_x0.safetensors`
     at 1 step, `sdxl_lightning_{N}step_unet.safetensors` otherwise; spec/lightning.md §3.5), sets
     `EulerDiscreteScheduler` with `timestep_spacing="trailing"` (and `prediction_type="sample"` at 1 step), and
     optionally swaps in the `madebyollin/sdxl-vae-fp16-fix` VAE (spec §4);
  2. saves that pipeline as a diffusers folder under the work directory and exports it with optimum-onnx
     (task "text-to-image"; spec §6.2);
  3. copies the shared parts (tokenizer, tokenizer_2, text_encoder, text_encoder_2, vae_decoder) from the first
     export into --out, and moves the export's unet/ to <out>/unet_<N>step/ with `lightning_steps` and
     `prediction_type` merged into its config.json (models/README.md "Rules the engine applies").
At the end it checks the folder without running a model: the files the engine requires, and the input and output
names of every graph (spec §6.3). It exits non-zero with one sentence per problem. `--check-only` runs just that.

Requirements: Python 3.10+ and `pip install -r models/export/requirements.txt` (optimum-onnx, diffusers,
transformers, torch, safetensors, huggingface_hub, onnx). The ONNX exporter moved out of `optimum` into
`optimum-onnx` in 2025; with an older optimum install `optimum[exporters]` instead and pass
`--task stable-diffusion-xl`. fp16 needs a CUDA GPU and a CUDA build of torch.

Status: this script has NOT been run by the project (PyPI and the model weights were unreachable where it was
written); only its argument handling and the folder checks were tested. Report what you had to change.

Usage:
  python models/export/export_lightning.py --out models/sdxl-lightning --steps 4 --dtype fp16 --device cuda
  python models/export/export_lightning.py --out models/sdxl-lightning --steps 1,2,4,8 --dtype fp32
  python models/export/export_lightning.py --out models/sdxl-lightning --check-only
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

BASE_REPO = "stabilityai/stable-diffusion-xl-base-1.0"
LIGHTNING_REPO = "ByteDance/SDXL-Lightning"
FP16_FIX_VAE_REPO = "madebyollin/sdxl-vae-fp16-fix"
LIGHTNING_STEPS = (1, 2, 4, 8)  # the UNet checkpoints ByteDance publishes (spec §3.5)
SHARED_PARTS = ("tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "vae_decoder")

# The engine's contract (src/diffusion/contract.ts, spec §6.3).
TEXT_ENCODER_INPUTS = ("input_ids",)
UNET_INPUTS = ("sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids")
UNET_OUTPUTS = ("out_sample",)
VAE_DECODER_INPUTS = ("latent_sample",)
VAE_DECODER_OUTPUTS = ("sample",)
ID_TYPES = ("int64", "int32")
HIDDEN_STATE = re.compile(r"^hidden_states\.(\d+)$")

# Disk per part in GB, parameters × 4 or × 2 bytes (models/README.md table, spec §7.1).
UNET_GB = {"fp32": 10.3, "fp16": 5.14}
SHARED_GB = {"fp32": 3.5, "fp16": 1.75}
LIGHTNING_FILE_GB = 5.14  # each Lightning UNet download is fp16 (spec §3.5)
BASE_DOWNLOAD_GB = 14  # SDXL base components in the Hugging Face cache (models/README.md "Building it yourself")

STEPS_PATTERN = re.compile(r"^\d+(,\d+)*$")


def lightning_file(steps: int) -> str:
    """The UNet-only checkpoint for `steps`; the 1-step one predicts x0 (spec §3.5)."""
    return "sdxl_lightning_1step_unet_x0.safetensors" if steps == 1 else f"sdxl_lightning_{steps}step_unet.safetensors"


def prediction_type(steps: int) -> str:
    return "sample" if steps == 1 else "epsilon"


# ---------------------------------------------------------------------------------------------------- arguments


def parse_steps(text: str) -> list[int]:
    if not STEPS_PATTERN.match(text):
        raise argparse.ArgumentTypeError(f"expected step counts separated by commas, such as 1,2,4,8; found {text!r}")
    steps = sorted({int(part) for part in text.split(",")})
    unknown = [s for s in steps if s not in LIGHTNING_STEPS]
    if unknown:
        allowed = ", ".join(str(s) for s in LIGHTNING_STEPS)
        raise argparse.ArgumentTypeError(f"SDXL-Lightning has UNets for {allowed} steps only; found {', '.join(map(str, unknown))}")
    return steps


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Export SDXL-Lightning to the ONNX model folder the bot loads (see models/export/README.md).",
    )
    parser.add_argument("--out", type=Path, required=True, help="model folder to build, e.g. models/sdxl-lightning")
    parser.add_argument("--steps", type=parse_steps, default=None, help="step counts to export, from 1,2,4,8, e.g. 4 or 1,2,4,8")
    parser.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32", help="precision of the ONNX models (default fp32)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device for the export; fp16 needs cuda (default cpu)")
    parser.add_argument(
        "--vae",
        choices=("fp16-fix", "base"),
        default=None,
        help="VAE to export: madebyollin's fp16-fix (default and required for fp16) or the SDXL base one (default for fp32)",
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch folder for diffusers folders and raw exports (default <out>.work)")
    parser.add_argument("--keep-work", action="store_true", help="keep the scratch folder afterwards")
    parser.add_argument("--force", action="store_true", help="re-export step counts whose unet_<N>step/model.onnx already exists")
    parser.add_argument("--task", default="text-to-image", help='optimum task name (default text-to-image; older optimum: "stable-diffusion-xl")')
    parser.add_argument("--check-only", action="store_true", help="only check an existing --out folder, export nothing")
    return parser


def validate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuses combinations that cannot work, one sentence each; fills in the VAE default."""
    if args.check_only:
        return
    if args.steps is None:
        parser.error("--steps is required (for example --steps 4 or --steps 1,2,4,8) unless --check-only.")
    if args.dtype == "fp16" and args.device != "cuda":
        parser.error("--dtype fp16 needs --device cuda: optimum exports fp16 only on a GPU.")
    if args.vae is None:
        args.vae = "fp16-fix" if args.dtype == "fp16" else "base"
    if args.dtype == "fp16" and args.vae == "base":
        parser.error("--dtype fp16 needs --vae fp16-fix: the SDXL base VAE overflows to NaN in fp16 (spec §4).")
    if args.work is None:
        args.work = args.out.with_name(args.out.name + ".work")


# import name -> pip package, for the one-line "install these" refusal
REQUIRED_MODULES = {
    "torch": "torch",
    "diffusers": "diffusers",
    "transformers": "transformers",
    "safetensors": "safetensors",
    "huggingface_hub": "huggingface_hub",
    "optimum": "optimum-onnx",
    "onnx": "onnx",
}


def missing_packages() -> list[str]:
    from importlib.util import find_spec

    return [package for module, package in REQUIRED_MODULES.items() if find_spec(module) is None]


def print_expectations(args: argparse.Namespace, pending: list[int]) -> None:
    unet = UNET_GB[args.dtype]
    total = SHARED_GB[args.dtype] + unet * len(pending)
    print(f"Exporting SDXL-Lightning {args.dtype} on {args.device}: step counts {', '.join(map(str, pending))} -> {args.out}")
    print("Expected resources (estimates from models/README.md and spec §6.1, §7.1):")
    print(f"  - result: each UNet ≈ {unet} GB, shared parts ≈ {SHARED_GB[args.dtype]} GB; this run ≈ {total:.1f} GB in {args.out}")
    print(f"  - scratch, per step count: a diffusers folder and its ONNX export, ≈ {2 * (unet + SHARED_GB[args.dtype]):.0f} GB in {args.work} (deleted after each step count unless --keep-work)")
    print(f"  - download cache: SDXL base ≈ {BASE_DOWNLOAD_GB} GB once, each Lightning UNet file ≈ {LIGHTNING_FILE_GB} GB")
    if args.dtype == "fp32":
        print("  - RAM: well over 10 GB (the fp32 UNet alone is 10.3 GB in memory and the exporter also holds the graph it writes); plan for 32 GB")
    else:
        print("  - GPU memory: the fp16 UNet is 5.14 GB, plus the export's tracing and validation; RAM: plan for 16 GB or more")


# ---------------------------------------------------------------------------------------------------- export


def assemble_diffusers_folder(steps: int, dtype: str, vae: str, folder: Path) -> None:
    """SDXL base + the Lightning UNet for `steps` + trailing Euler (+ fp16-fix VAE), saved with save_pretrained."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline
    from huggingface_hub import hf_hub_download
    from safetensors.torch import load_file

    torch_dtype = torch.float16 if dtype == "fp16" else torch.float32
    # the base repo ships *.fp16.safetensors; fp32 loads the full-precision files
    variant = {"variant": "fp16"} if dtype == "fp16" else {}
    print(f"[{steps} step] loading {BASE_REPO} ({dtype})")
    pipe = StableDiffusionXLPipeline.from_pretrained(BASE_REPO, torch_dtype=torch_dtype, **variant)
    print(f"[{steps} step] loading {LIGHTNING_REPO}/{lightning_file(steps)}")
    weights = load_file(hf_hub_download(LIGHTNING_REPO, lightning_file(steps)))  # fp16 file; upcast on load for fp32
    pipe.unet.load_state_dict(weights)
    del weights
    extra = {"prediction_type": "sample"} if steps == 1 else {}
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing", **extra)
    if vae == "fp16-fix":
        pipe.vae = AutoencoderKL.from_pretrained(FP16_FIX_VAE_REPO, torch_dtype=torch_dtype)
    print(f"[{steps} step] saving the diffusers folder to {folder}")
    pipe.save_pretrained(folder)
    del pipe
    gc.collect()


def export_onnx(source: Path, output: Path, task: str, dtype: str, device: str) -> None:
    """optimum-onnx's main_export; the optimum-cli command when that API is missing or takes other arguments."""
    try:
        import inspect

        from optimum.exporters.onnx import main_export
    except ImportError:
        main_export = None
    if main_export is not None:
        parameters = inspect.signature(main_export).parameters
        kwargs: dict[str, object] = {"model_name_or_path": str(source), "output": str(output), "task": task, "device": device}
        if "dtype" in parameters:
            kwargs["dtype"] = dtype
        elif "fp16" in parameters:
            kwargs["fp16"] = dtype == "fp16"
        else:
            main_export = None
    if main_export is not None:
        print(f"export: optimum main_export({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})")
        main_export(**kwargs)
        return
    command = ["optimum-cli", "export", "onnx", "--model", str(source), "--task", task]
    if dtype == "fp16":
        command += ["--dtype", "fp16", "--device", device]
    command.append(str(output))
    print(f"export: {' '.join(command)}")
    subprocess.run(command, check=True)


def merge_unet_config(config_path: Path, steps: int) -> None:
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    config.update(lightning_steps=steps, prediction_type=prediction_type(steps))
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def shared_parts_present(out: Path) -> bool:
    return all((out / part).is_dir() for part in SHARED_PARTS)


def export_step_count(args: argparse.Namespace, steps: int, install_shared: bool) -> None:
    diffusers_folder = args.work / f"diffusers-{steps}step"
    onnx_folder = args.work / f"onnx-{steps}step"
    for folder in (diffusers_folder, onnx_folder):
        if folder.exists():
            shutil.rmtree(folder)
    assemble_diffusers_folder(steps, args.dtype, args.vae, diffusers_folder)
    export_onnx(diffusers_folder, onnx_folder, args.task, args.dtype, args.device)
    if not args.keep_work:
        shutil.rmtree(diffusers_folder)

    args.out.mkdir(parents=True, exist_ok=True)
    if install_shared:
        for part in SHARED_PARTS:
            target = args.out / part
            if target.exists():
                shutil.rmtree(target)
            # move, not copy: model.onnx and its model.onnx_data stay together under the name the graph records
            shutil.move(str(onnx_folder / part), str(target))
        print(f"[{steps} step] installed {', '.join(SHARED_PARTS)}")
    unet_target = args.out / f"unet_{steps}step"
    if unet_target.exists():
        shutil.rmtree(unet_target)
    shutil.move(str(onnx_folder / "unet"), str(unet_target))
    merge_unet_config(unet_target / "config.json", steps)
    print(f"[{steps} step] installed {unet_target} (prediction_type {prediction_type(steps)})")
    if not args.keep_work:
        shutil.rmtree(onnx_folder)


# ---------------------------------------------------------------------------------------------------- checks


def read_graph(path: Path) -> tuple[dict[str, str], list[str], set[str]]:
    """Input names with element types, output names, and the external weight files the graph names.

    Reads the graph only (`load_external_data=False`), so a 10 GB UNet costs a few MB.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    inputs = {
        value.name: onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type).lower()
        for value in model.graph.input
        if value.name not in initializers
    }
    outputs = [value.name for value in model.graph.output]
    data_files = {
        entry.value
        for init in model.graph.initializer
        if init.data_location == onnx.TensorProto.EXTERNAL
        for entry in init.external_data
        if entry.key == "location"
    }
    return inputs, outputs, data_files


def read_json(path: Path, problems: list[str]) -> dict | None:
    try:
        parsed = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        problems.append(f"{path.parent.name}/{path.name}: not valid JSON ({error}).")
        return None
    if not isinstance(parsed, dict):
        problems.append(f"{path.parent.name}/{path.name}: expected a JSON object.")
        return None
    return parsed


def quoted(names) -> str:
    return ", ".join(f'"{n}"' for n in names) or "none"


def check_graph(out: Path, relative: str, inputs: tuple[str, ...], outputs: tuple[str, ...], problems: list[str]) -> tuple[dict[str, str], list[str]] | None:
    path = out / relative
    if not path.exists():
        problems.append(f"{relative}: missing.")
        return None
    try:
        found_inputs, found_outputs, data_files = read_graph(path)
    except Exception as error:  # a truncated or foreign file: report it with the rest
        problems.append(f"{relative}: the onnx package cannot read it ({error}).")
        return None
    for data in sorted(data_files):
        if not (path.parent / data).exists():
            problems.append(f"{relative}: its weights file {data} is missing beside it (keep the name the graph records).")
    if set(found_inputs) != set(inputs):
        problems.append(f"{relative}: expected inputs {quoted(inputs)}, found {quoted(found_inputs)}.")
    for name in outputs:
        if name not in found_outputs:
            problems.append(f'{relative}: expected an output named "{name}", found {quoted(found_outputs)}.')
    return found_inputs, found_outputs


def check_text_encoder(out: Path, part: str, outputs: tuple[str, ...], problems: list[str]) -> None:
    io = check_graph(out, f"{part}/model.onnx", TEXT_ENCODER_INPUTS, outputs, problems)
    if io is None:
        return
    found_inputs, found_outputs = io
    ids_type = found_inputs.get("input_ids")
    if ids_type is not None and ids_type not in ID_TYPES:
        problems.append(f'{part}/model.onnx: input "input_ids" is {ids_type}; expected {" or ".join(ID_TYPES)}.')
    if sum(1 for name in found_outputs if HIDDEN_STATE.match(name)) < 2:
        problems.append(
            f"{part}/model.onnx: expected outputs hidden_states.0 … hidden_states.N (exported with output_hidden_states), found {quoted(found_outputs)}."
        )


def check_tokenizers(out: Path, problems: list[str]) -> None:
    for part in ("tokenizer", "tokenizer_2"):
        for name in ("vocab.json", "merges.txt"):
            if not (out / part / name).exists():
                problems.append(f"{part}/{name}: missing.")
    candidates = [out / "tokenizer_2" / name for name in ("special_tokens_map.json", "tokenizer_config.json")]
    present = [path for path in candidates if path.exists()]
    if not present:
        problems.append('tokenizer_2/special_tokens_map.json: missing (it sets the pad token "!" that text_encoder_2 expects).')
        return
    config = read_json(present[0], problems)
    if config is None:
        return
    pad = config.get("pad_token")
    pad = pad.get("content") if isinstance(pad, dict) else pad
    if pad != "!":
        problems.append(f'tokenizer_2/{present[0].name}: pad_token is {pad!r}; text_encoder_2 expects "!" (spec §1.1).')


def check_unets(out: Path, requested: list[int], problems: list[str]) -> list[int]:
    found = sorted(int(m.group(1)) for m in (re.match(r"^unet_(\d+)step$", p.name) for p in out.iterdir() if p.is_dir()) if m)
    for steps in requested:
        if steps not in found:
            problems.append(f"unet_{steps}step/: missing.")
    if not found:
        problems.append("unet_1step/, unet_2step/, unet_4step/ or unet_8step/ (each with model.onnx): none found.")
    for steps in found:
        folder = f"unet_{steps}step"
        config_path = out / folder / "config.json"
        config = read_json(config_path, problems) if config_path.exists() else None
        if not config_path.exists():
            problems.append(f"{folder}/config.json: missing (it records lightning_steps and prediction_type).")
        elif config is not None:
            if config.get("lightning_steps") != steps:
                problems.append(f"{folder}/config.json: lightning_steps is {config.get('lightning_steps')!r} but the folder is for {steps} steps.")
            if config.get("prediction_type") != prediction_type(steps):
                problems.append(f"{folder}/config.json: prediction_type is {config.get('prediction_type')!r}; expected {prediction_type(steps)!r}.")
        check_graph(out, f"{folder}/model.onnx", UNET_INPUTS, UNET_OUTPUTS, problems)
    return found


def check_folder(out: Path, requested: list[int]) -> int:
    """Checks the folder the way the engine will read it; prints a summary and returns the exit code."""
    problems: list[str] = []
    if not out.is_dir():
        problems.append(f"{out}: the folder does not exist.")
        found: list[int] = []
    else:
        check_tokenizers(out, problems)
        try:
            import onnx  # noqa: F401  (only to report its absence once)
        except ImportError:
            problems.append("the onnx package is not installed, so no graph was checked (pip install onnx).")
            found = []
        else:
            check_text_encoder(out, "text_encoder", (), problems)
            check_text_encoder(out, "text_encoder_2", ("text_embeds",), problems)
            check_graph(out, "vae_decoder/model.onnx", VAE_DECODER_INPUTS, VAE_DECODER_OUTPUTS, problems)
            found = check_unets(out, requested, problems)
    if problems:
        print(f"\nThe model folder {out} is not usable:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"\nThe model folder {out} passed the checks: UNets for {', '.join(map(str, found))} steps.")
    print(f"Start the bot with MODEL_DIR={out}.")
    return 0


# ---------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate(args, parser)
    if args.check_only:
        return check_folder(args.out, args.steps or [])

    pending = [s for s in args.steps if args.force or not (args.out / f"unet_{s}step" / "model.onnx").exists()]
    for steps in args.steps:
        if steps not in pending:
            print(f"[{steps} step] unet_{steps}step/model.onnx exists; skipping (use --force to redo it)")
    missing = missing_packages() if pending else []
    if missing:
        print(f"Missing Python packages: {', '.join(missing)}; run pip install -r models/export/requirements.txt.", file=sys.stderr)
        return 2
    if pending:
        print_expectations(args, pending)
    install_shared = args.force or not shared_parts_present(args.out)
    try:
        for steps in pending:
            export_step_count(args, steps, install_shared)
            install_shared = False
            gc.collect()
    finally:
        if not args.keep_work and args.work.exists():
            shutil.rmtree(args.work)
    if not pending and install_shared:
        print("The shared parts are missing; rerun with --force for one step count to export them.", file=sys.stderr)
    return check_folder(args.out, args.steps)


if __name__ == "__main__":
    sys.exit(main())
