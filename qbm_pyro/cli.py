"""Command-line interface: ``qbm-pyro fit | trajectory | info``.

``qbm-pyro fit IN.h5mu -o OUT.h5mu`` fits a :class:`~qbm_pyro.QBMVAE` and writes the latent
(:func:`qbm_pyro.tl.qbm`), ``qbm-pyro trajectory IN -o OUT --root-key time --root-value 0h``
adds a diffusion pseudotime (:func:`qbm_pyro.tl.trajectory`) and ``qbm-pyro info IN`` describes
a file: its modalities, which of them the model can use, count layers, candidate batch columns
and the qbm outputs it already holds.

Inputs are never modified: outputs are written to a temporary file in the output's folder and
renamed over ``OUT`` (:func:`os.replace`), so an interrupted run leaves no half-written file.
Errors in what the user passed exit with status 2 and one line on stderr, failures during a run
with status 1; ``--debug`` shows the traceback instead.

Examples
--------
.. code-block:: bash

    qbm-pyro info data.h5mu
    qbm-pyro fit data.h5mu -o fitted.h5mu --batch-key batch --epochs 200
    qbm-pyro fit data.h5mu -o fitted.h5mu --layer rna:counts prot:counts --sampler sa
    qbm-pyro trajectory fitted.h5mu -o traj.h5mu --root-key time --root-value 0h
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

log = logging.getLogger("qbm_pyro.cli")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
SUFFIXES = (".h5mu", ".h5ad")
SAMPLERS = ("gibbs", "tempering", "sa")


class UsageError(Exception):
    """Bad input from the user (exit status 2)."""


################################################################################
# Entry point.
################################################################################


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    Parameters
    ----------
    argv
        Arguments without the program name, e.g. ``["info", "data.h5mu"]``.

    Returns
    -------
    int
        ``0`` on success, ``2`` for bad usage or bad input, ``1`` for a failure during the run.
    """
    with warnings.catch_warnings():
        # Deprecation notices of the libraries underneath (anndata, mudata, pandas) are for
        # developers, not for users of the command line.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its message (or --help, --version)
        return int(exit_.code or 0)
    _configure_logging(args.quiet)
    try:
        with warnings.catch_warnings():
            if args.quiet:
                warnings.simplefilter("ignore")
            return args.run(args)
    except UsageError as error:
        if args.debug:
            raise
        print(f"qbm-pyro {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"qbm-pyro {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a failure: one line, no traceback
        if args.debug:
            raise
        print(f"qbm-pyro {args.command}: failed: {type(error).__name__}: {_message(error)}", file=sys.stderr)
        return EXIT_FAILURE


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar, logging or warnings")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    from qbm_pyro import __version__  # cheap: the package loads its parts on first use
    from qbm_pyro._constants import PRIORS

    parser = argparse.ArgumentParser(
        prog="qbm-pyro",
        description="Boltzmann-machine priors for single-cell multi-omics (MuData / AnnData).",
    )
    parser.add_argument("--version", action="version", version=f"qbm-pyro {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = sub.add_parser(
        "fit", parents=[common], help="fit a QBM-VAE and write X_qbm", description=_fit.__doc__
    )
    fit.add_argument("input", type=Path, metavar="IN", help="input .h5mu or .h5ad")
    _add_output(fit)
    fit.add_argument(
        "--modalities",
        nargs="+",
        metavar="NAME[:KIND]",
        help="modalities to model, e.g. 'rna prot' or 'rna:rna adt:protein' (default: inferred from names)",
    )
    fit.add_argument(
        "--layer",
        nargs="+",
        metavar="[NAME:]LAYER",
        help="layer holding the counts: one for all count modalities ('counts') or per modality "
        "('rna:counts prot:counts'); default X",
    )
    fit.add_argument("--batch-key", nargs="+", metavar="KEY", help="obs column(s) with batch labels")
    sizes = "default: follows the number of cells, see qbm_pyro.pp.size_defaults"
    fit.add_argument("--n-latent", type=_positive_int, help="binary latent units (default 64)")
    fit.add_argument("--n-continuous", type=_non_negative_int, help="Gaussian latent units (default 16)")
    fit.add_argument(
        "--n-top-genes",
        type=_n_top_genes,
        default="auto",
        metavar="N|auto|all",
        help="fit on the N most variable RNA genes (seurat_v3); 'auto' (default): 2000 when there are "
        "more than 4000; 'all': every gene. OUT keeps all genes (var['qbm_highly_variable'])",
    )
    fit.add_argument("--prior", choices=PRIORS, default="boltzmann", help="latent prior (default boltzmann)")
    fit.add_argument(
        "--likelihood-weights",
        nargs="+",
        default=["balanced"],
        metavar="balanced|none|NAME=W",
        help="weight of each modality's log-likelihood in the training loss: 'balanced' (default: "
        "ATAC weighs genes/peaks), 'none' (all 1, the plain ELBO) or per modality ('atac=0.1')",
    )
    fit.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="tempering",
        help="negative-phase sampler: persistent parallel tempering (the default), single-chain "
        "persistent Gibbs or simulated annealing (dimod)",
    )
    fit.add_argument("--epochs", type=_positive_int, help=f"maximum epochs ({sizes})")
    fit.add_argument(
        "--batch-size", type=_positive_int, default=128, help="cells per minibatch (default 128)"
    )
    fit.add_argument(
        "--prior-refit-steps",
        type=_non_negative_int,
        default=2000,
        help="steps of the prior's last fit to the final encoder's aggregate posterior "
        "(default 2000; 0: off, the prior left at its last training iterate)",
    )
    fit.add_argument(
        "--continuous-kl-weight",
        type=_positive_float,
        default=None,
        help="weight of the Gaussian units' KL in the training objective (default: the library's, "
        "3: the binary code, and so the prior's landscape, carries more of the cells' states; "
        "1: the plain ELBO)",
    )
    fit.add_argument(
        "--continuous-free-bits",
        type=_non_negative_float,
        default=None,
        help="free bits of each Gaussian unit's KL, in nats (default: the library's, 0: off; "
        "0.5 keeps the Gaussian units from collapsing but moves the cells' states out of the "
        "binary code)",
    )
    fit.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    fit.add_argument(
        "--device",
        default="auto",
        help="where to train: auto (CUDA when available), cpu, cuda or cuda:N (default auto)",
    )
    fit.add_argument("--model-dir", type=Path, help="where to save the model (default: OUT stem + '_model/')")
    fit.add_argument("--checkpoint", type=Path, help="write the training state there after every epoch")
    fit.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    fit.add_argument("--key-added", default="qbm", help="name of the outputs (default qbm)")
    fit.set_defaults(run=_fit)

    traj = sub.add_parser(
        "trajectory",
        parents=[common],
        help="diffusion pseudotime on X_qbm",
        description=_trajectory.__doc__,
    )
    traj.add_argument("input", type=Path, metavar="IN", help="input .h5mu or .h5ad with obsm['X_qbm']")
    _add_output(traj)
    root = traj.add_mutually_exclusive_group(required=True)
    root.add_argument("--root", help="root cell name, or auto_energy / auto_diffusion")
    root.add_argument("--root-key", help="obs column defining the root group (with --root-value)")
    traj.add_argument("--root-value", help="value of --root-key of the root group")
    traj.add_argument("--use-rep", default="X_qbm", help="obsm key of the latent (default X_qbm)")
    traj.add_argument(
        "--energy-key",
        nargs="+",
        default=["qbm_energy"],
        metavar="KEY",
        help="obs column(s) of prior energies for --root auto_energy (default qbm_energy); several, "
        "one per fit (e.g. other seeds' `fit --key-added`), root from their consensus and warn "
        "when the fits root in different states",
    )
    traj.add_argument("--metric", choices=("hellinger", "hamming", "euclidean"), default="hellinger")
    traj.add_argument("--n-neighbors", type=_positive_int, default=15)
    traj.add_argument("--n-dcs", type=_positive_int, default=10)
    traj.add_argument("--groups-key", help="obs column of given states (default: Leiden clusters)")
    traj.add_argument("--resolution", type=float, default=1.0, help="Leiden resolution")
    traj.add_argument("--key-added", default="qbm", help="prefix of the outputs (default qbm)")
    traj.add_argument("--seed", type=_non_negative_int, default=0)
    traj.set_defaults(run=_trajectory)

    info = sub.add_parser("info", parents=[common], help="describe a file", description=_info.__doc__)
    info.add_argument("input", type=Path, metavar="IN", help="input .h5mu or .h5ad")
    info.set_defaults(run=_info)
    return parser


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output file")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace OUT (and the saved model) if present"
    )


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _finite_float(text: str, *, strict: bool) -> float:
    """A finite number above 0 (``strict``) or at least 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and (value > 0 if strict else value >= 0)):
        kind = "positive" if strict else "non-negative"
        raise argparse.ArgumentTypeError(f"must be a {kind} finite number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    return _finite_float(text, strict=True)


def _non_negative_float(text: str) -> float:
    return _finite_float(text, strict=False)


def _n_top_genes(text: str) -> int | str | None:
    if text in ("auto", "all"):
        return None if text == "all" else text
    return _positive_int(text)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be non-negative, got {text!r}")
    return value


def _configure_logging(quiet: bool) -> None:
    logger = logging.getLogger("qbm_pyro")
    if not any(getattr(h, "_qbm_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._qbm_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


################################################################################
# Commands.
################################################################################


def _device(value: str) -> dict:
    """``--device`` as QBMVAE's ``accelerator`` / ``device`` arguments."""
    if value in ("auto", "cpu", "cuda"):
        return {"accelerator": value}
    if value.startswith("cuda:"):
        return {"accelerator": "cuda", "device": value}
    raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {value!r}")


def _fit(args: argparse.Namespace) -> int:
    """Fit a QBM-VAE on IN and write OUT with obsm['X_qbm'], obs['qbm_energy'] and uns['qbm']."""
    from qbm_pyro.model import QBMVAE, SAVE_KEYS
    from qbm_pyro.pp import NonCountInputWarning, check_input, select_genes, size_defaults
    from qbm_pyro.tl import qbm

    _check_paths(args.input, args.output, args.overwrite)
    model_dir = args.model_dir or args.output.with_name(args.output.stem + "_model")
    model_file = model_dir / SAVE_KEYS.MODEL_FNAME
    if model_file.exists() and not args.overwrite:
        raise UsageError(f"{model_file} exists; pass --overwrite or choose --model-dir")
    if args.resume and args.checkpoint is None:
        raise UsageError("--resume needs --checkpoint PATH")
    data = _read(args.input)
    try:
        # the whole input of every modality, before selection or normalisation touches it
        check_input(data, modalities=_modalities(args.modalities), layers=_layers(args.layer),
                    batch_key=_one_or_many(args.batch_key))  # fmt: skip
        with warnings.catch_warnings():  # check_input warned about non-count values once
            warnings.simplefilter("ignore", NonCountInputWarning)
            fit_data = select_genes(
                data, args.n_top_genes, modalities=_modalities(args.modalities), layers=_layers(args.layer),
                batch_key=_one_or_many(args.batch_key),
            )  # fmt: skip
        sizes = size_defaults(int(data.n_obs), n_latent=args.n_latent, n_continuous=args.n_continuous,
                              max_epochs=args.epochs)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonCountInputWarning)
            model = QBMVAE(
                fit_data,
                modalities=_modalities(args.modalities),
                layers=_layers(args.layer),
                batch_key=_one_or_many(args.batch_key),
                n_latent=sizes["n_latent"],
                n_continuous=sizes["n_continuous"],
                prior=args.prior,
                likelihood_weights=_likelihood_weights(args.likelihood_weights),
                sampler=_sampler(args.sampler, args.seed),
                seed=args.seed,
                **_device(args.device),
            )
    except (ValueError, KeyError, TypeError, RuntimeError) as error:
        raise UsageError(_message(error)) from error
    log.info("%r", model)
    model.train(
        max_epochs=sizes["max_epochs"],
        validation_fraction=sizes["validation_fraction"],
        early_stopping=sizes["early_stopping"],
        batch_size=args.batch_size,
        prior_refit_steps=args.prior_refit_steps,
        **({} if args.continuous_kl_weight is None else {"continuous_kl_weight": args.continuous_kl_weight}),
        **({} if args.continuous_free_bits is None else {"continuous_free_bits": args.continuous_free_bits}),
        progress_bar=not args.quiet,
        checkpoint_path=None if args.checkpoint is None else str(args.checkpoint),
        resume=args.resume,
    )
    qbm(data, model, key_added=args.key_added, progress_bar=False)
    _write(data, args.output)
    model.save(model_dir, overwrite=args.overwrite)
    log.info("wrote %s and %s", args.output, model_dir)
    return EXIT_OK


def _trajectory(args: argparse.Namespace) -> int:
    """Infer a diffusion pseudotime and branches on obsm['X_qbm'] of IN (from 'qbm-pyro fit'); write OUT."""
    from qbm_pyro.tl import trajectory

    _check_paths(args.input, args.output, args.overwrite)
    if args.root_key is not None and args.root_value is None:
        raise UsageError("--root-key needs --root-value")
    if args.root_value is not None and args.root_key is None:
        raise UsageError("--root-value needs --root-key")
    data = _read(args.input)
    if args.use_rep not in data.obsm:
        raise UsageError(
            f"{args.input} has no obsm[{args.use_rep!r}]; run `qbm-pyro fit` on it first "
            f"(obsm keys present: {sorted(data.obsm.keys()) or 'none'})"
        )
    root: Any = args.root
    root_value = None
    if args.root_key is not None:
        root_value = _obs_value(data, args.root_key, args.root_value)
    elif root not in ("auto_energy", "auto_diffusion") and root not in data.obs_names:
        raise UsageError(
            f"--root {root!r} is not a cell name of {args.input}, nor auto_energy/auto_diffusion"
        )
    if args.groups_key is not None and args.groups_key not in data.obs:
        raise UsageError(f"--groups-key {args.groups_key!r} is not an obs column of {args.input}")
    try:
        trajectory(
            data,
            root,
            use_rep=args.use_rep,
            metric=args.metric,
            n_neighbors=args.n_neighbors,
            n_dcs=args.n_dcs,
            root_key=args.root_key,
            root_value=root_value,
            energy_key=args.energy_key,
            groups_key=args.groups_key,
            resolution=args.resolution,
            key_added=args.key_added,
            seed=args.seed,
        )
    except (ValueError, KeyError) as error:
        raise UsageError(_message(error)) from error
    _write(data, args.output)
    log.info("wrote %s", args.output)
    return EXIT_OK


def _info(args: argparse.Namespace) -> int:
    """Describe IN: modalities, shapes, usable kinds, count layers, batch-like obs columns, qbm outputs."""
    from qbm_pyro.data.describe import describe

    _check_input(args.input)
    data = _read(args.input)
    print("\n".join(describe(data, name=str(args.input), cli=True)))
    return EXIT_OK


################################################################################
# Files and arguments.
################################################################################


def _check_input(path: Path) -> None:
    if path.suffix not in SUFFIXES:
        raise UsageError(f"{path}: expected a .h5mu or .h5ad file")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")


def _check_paths(input_: Path, output: Path, overwrite: bool) -> None:
    _check_input(input_)
    if output.suffix != input_.suffix:
        raise UsageError(f"OUT must have the suffix of IN ({input_.suffix}), got {output}")
    if output.resolve() == input_.resolve():
        raise UsageError(f"OUT is IN ({input_}); the input is never overwritten, choose another OUT")
    if output.exists() and not overwrite:
        raise UsageError(f"{output} exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise UsageError(f"the folder of OUT does not exist: {output.parent}")


def _read(path: Path):
    import anndata as ad
    import mudata as md

    try:
        if path.suffix == ".h5mu":
            return md.read_h5mu(path)
        return ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as error:
        raise UsageError(f"cannot read {path}: {_message(error)}") from error


def _write(data, path: Path) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    from qbm_pyro.torch_files import atomic_write

    atomic_write(path, data.write_h5mu if path.suffix == ".h5mu" else data.write_h5ad)


def _modalities(items: Sequence[str] | None):
    if not items:
        return None
    if not any(":" in item for item in items):
        return list(items)
    out = {}
    for item in items:
        name, sep, kind = item.partition(":")
        if not sep or not name or not kind:
            raise UsageError(f"--modalities: give all items as NAME:KIND or none of them, got {item!r}")
        out[name] = kind
    return out


def _layers(items: Sequence[str] | None):
    """``--layer counts`` (one for all) or ``--layer rna:counts prot:counts`` (per modality)."""
    if not items:
        return None
    if len(items) == 1 and ":" not in items[0]:
        return items[0]
    out = {}
    for item in items:
        name, sep, layer = item.partition(":")
        if not sep or not name or not layer:
            raise UsageError(
                f"--layer: give one LAYER for all modalities or NAME:LAYER for each, got {item!r}"
            )
        out[name] = layer
    return out


def _one_or_many(items: Sequence[str] | None):
    if not items:
        return None
    return items[0] if len(items) == 1 else list(items)


def _likelihood_weights(values: list[str]):
    """``--likelihood-weights``: ``balanced``, ``none`` or ``NAME=W`` pairs, as QBMVAE takes them."""
    if len(values) == 1 and values[0].lower() in ("balanced", "none"):
        return None if values[0].lower() == "none" else "balanced"
    weights = {}
    for value in values:
        name, sep, weight = value.partition("=")
        try:
            weights[name] = float(weight)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise UsageError(
                f"--likelihood-weights takes 'balanced', 'none' or NAME=WEIGHT pairs, got {value!r}"
            )
    return weights


def _sampler(name: str, seed: int):
    """``None`` (the prior's default, persistent parallel tempering) or the chosen sampler."""
    if name == "tempering":
        return None
    if name == "gibbs":
        from qbm_pyro.samplers import default_gibbs

        return default_gibbs(seed=seed)
    from qbm_pyro.samplers import DimodSampler

    return DimodSampler(num_sweeps=200, seed=seed)


def _obs_value(data, key: str, text: str):
    """The value of ``obs[key]`` whose string form is ``text`` (so '0h' and '3' both work)."""
    if key not in data.obs:
        raise UsageError(f"--root-key {key!r} is not an obs column (columns: {list(data.obs.columns)})")
    values = data.obs[key].dropna().unique()
    for value in values:
        if str(value) == text:
            return value
    shown = ", ".join(map(str, list(values)[:20]))
    raise UsageError(f"--root-value {text!r} is not a value of obs[{key!r}] (values: {shown})")


#: Hints of the library in Python syntax, and how to say them on the command line.
_CLI_HINTS = (
    (re.compile(r"pass layers=\{'([^']+)': '([^']+)'\}"), r"pass --layer \1:\2"),
    (re.compile(r"pass layers=\{'([^']+)': None\}"), r"leave \1 out of --layer (its X holds counts)"),
    (re.compile(r"pass modalities=\{name: kind\}"), "pass --modalities NAME:KIND"),
    (re.compile(r"pass batch_key=None for one batch"), "leave out --batch-key for one batch"),
    (re.compile(r"pass a layer that holds counts"), "pass --layer NAME:LAYER with a layer that holds counts"),
    (re.compile(r"pass skip_empty_cells=False[^)]*"), "filter those cells out of IN first"),
    (re.compile(r"pass overwrite=True"), "pass --overwrite"),
)


def _message(error: BaseException) -> str:
    """The error's text, with the library's Python-syntax hints put in CLI syntax."""
    text = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
    for pattern, replacement in _CLI_HINTS:
        text = pattern.sub(replacement, text)
    return text


if __name__ == "__main__":
    sys.exit(main())
