"""Screen every elpasolite ABC2D6 over a model's elements (what Faber et al. did).

Enumeration: four *different* elements (as in the 10,590 DFT crystals), A and B counted
once per unordered pair, since they sit on equivalent octahedral sites: with n elements
that is n(n-1)/2 (n-2)(n-3) compositions, 987,012 for the 39 of the data.

Two observations make this fast:

* On the hard-sphere prototype a crystal's geometry depends on its elements only through
  the lattice constant ``a`` and the D-site parameter ``x`` (:func:`.elpasolite_geometry`),
  and most (a, x) pairs are shared by many compositions (e.g. whenever the octahedral
  contact sets ``a``, the C element does not enter). The species-pair spectrum of a
  crystal is the *site*-pair spectrum of its geometry with the sites labelled by its
  elements, because the spherical expansion has no per-element parameters. So featomic
  runs once per distinct geometry (26,174 for the 39 elements), and every composition
  costs only a compression and a kernel row.
* Swapping A and B gives the same crystal when the octahedral contact sets ``a``; when the
  C-D contact does (7 % of the space), the prototype puts D in contact with A, and the two
  orders are two different guesses of one crystal. Both are predicted and the lower
  energy is kept, with the order that gave it in columns A, B.

Results stream to ``<out>.partial`` in fixed-size chunks; a small state file records how
many chunks (and bytes) are complete, so an interrupted screen resumes where it stopped
(without duplicates or gaps), and the finished table is renamed to ``out`` atomically.

With a ``dask.distributed`` client the featomic blocks and the chunks run as tasks on its
workers (the model and the site spectra are sent to each worker once). The client alone
writes: it keeps the chunks that finish early until those before them are written, so the
file, its checkpoints and its rows are those of a serial screen. A task on a worker that
dies is run again elsewhere (the scheduler's ``allowed-failures``), and a killed client
resumes from its last checkpoint like a serial screen.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from ase.data import atomic_numbers, covalent_radii

from ..core.features import PairSpectrum
from ..core.fileio import atomic_write
from ..data.datasets import elpasolite_cell, elpasolite_geometry
from .model import AlchemicalKRR

__all__ = ["enumerate_elpasolites", "screen_elpasolites", "ScreenResult"]

#: Site labels used to compute site-pair spectra (any four distinct elements do: featomic
#: only sees local types, ordered by atomic number, so A, B, C, D -> types 1, 2, 3, 4).
_SITE_LABELS = (1, 2, 3, 4)
#: Geometries per featomic task on a cluster: a multiple of compute_pair_spectrum's batch
#: (100), so the blocks are computed in the same batches as one serial call, bit for bit.
_GEOMETRY_BLOCK = 2000
#: Runs of a task on workers that died before it is given up (the scheduler's default).
_TASK_RETRIES = 2


def enumerate_elpasolites(elements: Sequence[str]) -> np.ndarray:
    """All ABC2D6 compositions of four different ``elements``, A/B pairs counted once.

    Returns
    -------
    numpy.ndarray
        ``(n, 4)`` indices into ``elements`` (A, B, C, D) with A < B, in a fixed order.
    """
    n = len(elements)
    if len(set(elements)) != n:
        raise ValueError(f"elements must be distinct, got {list(elements)}")
    if n < 4:
        raise ValueError(f"an elpasolite needs four different elements; got {n}")
    a, b = np.triu_indices(n, k=1)
    cd = np.array([(c, d) for c in range(n) for d in range(n) if c != d])
    pairs = np.repeat(np.stack([a, b], 1), len(cd), axis=0)
    rest = np.tile(cd, (len(a), 1))
    combos = np.concatenate([pairs, rest], axis=1)
    keep = (
        (combos[:, 2] != combos[:, 0]) & (combos[:, 2] != combos[:, 1])
        & (combos[:, 3] != combos[:, 0]) & (combos[:, 3] != combos[:, 1])
    )  # fmt: skip
    return combos[keep]


class ScreenResult(dict):
    """Summary of a screen: ``path``, ``n_compositions``, ``n_structures``,
    ``n_geometries``, ``seconds``, ``throughput`` (structures/s) and ``best`` (rows)."""


def _geometries(radii: np.ndarray, combos: np.ndarray):
    """(a, x) of both A/B orders, which order differs, and ids of distinct geometries."""
    r = radii[combos]
    a1, x1 = elpasolite_geometry(r[:, 0], r[:, 1], r[:, 2], r[:, 3])
    a2, x2 = elpasolite_geometry(r[:, 1], r[:, 0], r[:, 2], r[:, 3])
    # identical crystals unless the C-D contact sets a for one of the orders
    a_oct = 2.0 * ((r[:, 0] + r[:, 3]) + (r[:, 1] + r[:, 3]))  # as elpasolite_geometry rounds
    both = (a1 > a_oct) | (a2 > a_oct)
    # only the geometries that will be predicted: every A,B order, and B,A where it differs
    keys = np.concatenate([np.stack([a1, x1], 1), np.stack([a2, x2], 1)[both]])
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    geo2 = np.full(len(combos), -1)  # -1: never used (the crystal is the same either way)
    geo2[both] = inverse[len(combos) :]
    return unique, inverse[: len(combos)], geo2, both


def _site_spectra(model: AlchemicalKRR, geometries: np.ndarray, progress: bool) -> PairSpectrum:
    frames = [elpasolite_cell(_SITE_LABELS, float(a), float(x)) for a, x in geometries]
    return model.pair_spectrum(frames, progress=progress)


def _site_spectra_on(client, model_future, geometries: np.ndarray, progress: bool):
    """The site spectra computed in blocks on the workers of ``client``, as one future
    (gathered here, concatenated and sent back to every worker once)."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    starts = range(0, len(geometries), _GEOMETRY_BLOCK)
    futures = {
        client.submit(
            _site_spectra, model_future, geometries[i : i + _GEOMETRY_BLOCK], False,
            pure=False, retries=_TASK_RETRIES,
        ): k
        for k, i in enumerate(starts)
    }  # fmt: skip
    parts = [None] * len(futures)
    bar = tqdm(total=len(geometries), desc="featurizing", unit="struct", disable=not progress)
    for future, part in as_completed(futures, with_results=True):
        parts[futures[future]] = part
        bar.update(len(part))
    bar.close()
    return client.scatter(PairSpectrum.concatenate(parts), broadcast=True, hash=False)


def _write_state(path: Path, settings: dict, chunks_done: int, n_bytes: int) -> None:
    text = json.dumps({"settings": settings, "chunks_done": chunks_done, "bytes": n_bytes})
    atomic_write(path, lambda tmp: tmp.write_text(text))


def screen_elpasolites(
    model: AlchemicalKRR,
    out: str | os.PathLike,
    elements: Sequence[str] | None = None,
    uncertainty: bool = True,
    chunk_size: int = 10000,
    top: int = 20,
    overwrite: bool = False,
    progress: bool = True,
    model_id: str | None = None,
    max_chunks: int | None = None,
    client=None,
) -> ScreenResult:
    """Predict the energy of every elpasolite over ``elements`` and write a CSV.

    Parameters
    ----------
    model
        A fitted model.
    out
        CSV to write: ``index, A, B, C, D, energy_ev_per_atom, [std_ev_per_atom,]
        lattice_constant_a, x``; one row per composition, in enumeration order.
    elements
        Element symbols (default: all the model knows).
    uncertainty
        Also write the calibrated predictive standard deviation.
    chunk_size
        Compositions per chunk (the unit of progress and of resumption).
    top
        Number of lowest-energy candidates returned in ``result["best"]``.
    overwrite
        Replace an existing ``out``; otherwise an existing file is an error.
    progress
        Show progress bars.
    model_id
        Text identifying the model in the resume state (default: derived from U and
        the weights); a resumed screen must use the same model and settings.
    max_chunks
        Stop after this many chunks in this call (leaves a resumable partial file; for
        tests and for splitting the work over sessions).
    client
        A ``distributed.Client``: run the featomic blocks and the chunks as tasks on its
        workers (``pip install 'ase-alchemical[dask]'``). The output is the serial one.

    Returns
    -------
    ScreenResult
    """
    out = Path(out)
    elements = _checked_elements(model, out, elements, uncertainty, overwrite)
    t_start = time.perf_counter()
    numbers = np.array([atomic_numbers[e] for e in elements])
    combos = enumerate_elpasolites(elements)
    geometries, geo1, geo2, both = _geometries(covalent_radii[numbers], combos)
    settings = {
        "model": model_id or _model_id(model), "elements": elements,
        "uncertainty": bool(uncertainty), "chunk_size": int(chunk_size),
        "n_compositions": len(combos),
    }  # fmt: skip
    partial = out.with_name(out.name + ".partial")
    state_path = out.with_name(out.name + ".partial.json")
    done, n_bytes = _resume(partial, state_path, settings)
    n_chunks = -(-len(combos) // chunk_size)
    last = n_chunks if max_chunks is None else min(n_chunks, done + max_chunks)
    chunk_inputs = {
        chunk: (chunk * chunk_size, min((chunk + 1) * chunk_size, len(combos)))
        for chunk in range(done, last)
    }
    args = (numbers, elements, combos, geo1, geo2, both, geometries, uncertainty)
    results = _chunk_results(model, client, args, geometries, chunk_inputs, progress)
    n_structures = _append_chunks(
        partial, state_path, settings, results, chunk_inputs, n_bytes, progress,
        total=len(combos), initial=min(done * chunk_size, len(combos)),
    )  # fmt: skip
    counts = {"n_compositions": len(combos), "n_structures_this_call": n_structures,
              "n_geometries": len(geometries)}  # fmt: skip
    return _finish(out, partial, state_path, n_chunks, counts, time.perf_counter() - t_start, top)


def _finish(out, partial, state_path, n_chunks, counts: dict, seconds: float, top: int):
    """The result of a call; when every chunk is done, the partial file becomes ``out``
    and the resume state goes."""
    finished = json.loads(state_path.read_text())["chunks_done"] == n_chunks
    n = counts["n_structures_this_call"]
    result = ScreenResult(
        path=str(out if finished else partial), finished=finished, **counts, seconds=seconds,
        throughput=n / seconds if seconds > 0 else float("nan"),
    )  # fmt: skip
    if finished:
        os.replace(partial, out)
        state_path.unlink()
        result["best"] = lowest_energies(out, top)
    return result


def _model_id(model) -> str:
    """A text identifying the model in the resume state: a hash of U and the weights."""
    h = hashlib.sha256(model.compression_.U.detach().cpu().numpy().tobytes())
    h.update(model.weights_.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _chunk_results(model, client, args, geometries, chunk_inputs: dict, progress) -> Iterator:
    """(chunk, (rows text, structures predicted)) of each chunk to do: here, or as
    tasks on a dask ``client``."""
    if not chunk_inputs:
        return iter(())
    if client is not None:
        return _chunks_on(client, model, args, chunk_inputs, progress)
    sites = _site_spectra(model, geometries, progress)
    return (
        (chunk, _screen_chunk(model, sites, *args, lo, hi))
        for chunk, (lo, hi) in chunk_inputs.items()
    )


def _checked_elements(model, out: Path, elements, uncertainty: bool, overwrite: bool) -> list:
    """The elements to screen, after checking the output file, the symbols and the
    model's calibration."""
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    elements = list(model.compression_.symbols if elements is None else elements)
    unknown = [e for e in elements if e not in atomic_numbers]
    if unknown:
        raise ValueError(f"unknown element symbols {unknown}")
    not_in_model = sorted(set(elements) - set(model.compression_.symbols))
    if not_in_model:
        raise ValueError(
            f"the model does not know {not_in_model}; it knows {model.compression_.symbols}"
        )
    if uncertainty and getattr(model, "uncertainty_scale_", None) is None:
        raise RuntimeError(
            "this model has no calibrated uncertainty; call model.calibrate_uncertainty() "
            "or screen without uncertainty"
        )
    return elements


def _resume(partial: Path, state_path: Path, settings: dict) -> tuple[int, int]:
    """(chunks done, bytes of the partial file) of a screen with ``settings``: from its
    resume state, the file truncated to the last checkpoint; or a new partial file with
    the header."""
    if partial.exists() and state_path.exists():
        state = json.loads(state_path.read_text())
        if state.get("settings") != settings:
            raise ValueError(
                f"{partial} belongs to a screen with other settings ({state.get('settings')}); "
                "delete it and its .json to start over"
            )
        done, n_bytes = int(state["chunks_done"]), int(state["bytes"])
        with open(partial, "r+b") as f:  # drop anything written after the last checkpoint
            f.truncate(n_bytes)
        return done, n_bytes
    header = ["index", "A", "B", "C", "D", "energy_ev_per_atom"]
    header += ["std_ev_per_atom"] if settings["uncertainty"] else []
    header += ["lattice_constant_a", "x"]
    partial.write_text(",".join(header) + "\n")
    n_bytes = partial.stat().st_size
    _write_state(state_path, settings, 0, n_bytes)
    return 0, n_bytes


def _append_chunks(
    partial, state_path, settings, results, chunk_inputs, n_bytes, progress, total, initial
) -> int:
    """Append each chunk's rows to the partial file, durably, checkpointing the resume
    state after each; returns the number of structures predicted."""
    from tqdm.auto import tqdm

    n_structures = 0
    bar = tqdm(total=total, initial=initial, desc="screening", unit="crystal",
               disable=not progress, smoothing=0.05)  # fmt: skip
    with open(partial, "ab") as f:
        for chunk, (text, n_pred) in results:
            f.write(text.encode())
            f.flush()
            os.fsync(f.fileno())
            n_bytes += len(text.encode())
            _write_state(state_path, settings, chunk + 1, n_bytes)
            n_structures += n_pred
            lo, hi = chunk_inputs[chunk]
            bar.update(hi - lo)
    bar.close()
    return n_structures


def _chunks_on(client, model, args, chunk_inputs: dict, progress: bool) -> Iterator:
    """Run the chunks as tasks on ``client``'s workers; yield ``(chunk, result)`` in
    chunk order, keeping those that finish early until the ones before them are in."""
    from distributed import as_completed  # installed with the client it was given

    # hash=False: sending the model once is cheaper than hashing its tensors
    model_future = client.scatter(model, broadcast=True, hash=False)
    sites = _site_spectra_on(client, model_future, args[6], progress)
    futures = {
        client.submit(
            _screen_chunk, model_future, sites, *args, lo, hi,
            pure=False, retries=_TASK_RETRIES, priority=-chunk,
        ): chunk
        for chunk, (lo, hi) in chunk_inputs.items()
    }  # fmt: skip
    waiting, following = {}, min(chunk_inputs)
    for future, result in as_completed(futures, with_results=True):
        waiting[futures[future]] = result
        while following in waiting:
            yield following, waiting.pop(following)
            following += 1


def _screen_chunk(
    model, sites, numbers, elements, combos, geo1, geo2, both, geometries, uncertainty, lo, hi
) -> tuple[str, int]:
    """The CSV rows of compositions ``lo:hi`` and the number of structures predicted (the
    one task of a screen, serial or on a worker)."""
    z = torch.as_tensor(numbers, device=model.torch_device)
    rows, e, std, geo, n_pred = _predict_chunk(
        model, sites, z, combos[lo:hi], geo1[lo:hi], geo2[lo:hi], both[lo:hi], uncertainty
    )
    return _format_rows(lo, elements, rows, e, std, geometries[geo]), n_pred


def _predict_chunk(model, sites, z, combos, geo1, geo2, both, uncertainty):
    """Predict compositions (both A/B orders where they differ) and keep the lower energy.

    Returns the rows as written (A, B in the order kept), energies, standard deviations
    (or None), geometry ids and the number of structures predicted.
    """
    swapped = combos[both][:, [1, 0, 2, 3]]
    structures = torch.as_tensor(np.concatenate([combos, swapped]), device=z.device)
    geo = np.concatenate([geo1, geo2[both]])
    spectrum = PairSpectrum(
        sites.values[torch.as_tensor(geo, device=sites.values.device)], z[structures],
        torch.full((len(structures),), 10, device=z.device), sites.center_resolved,
    )  # fmt: skip
    with torch.no_grad():
        pred = model.predict_from_spectrum(spectrum, return_std=uncertainty)
    energy = (pred[0] if uncertainty else pred).cpu().numpy()
    std = pred[1].cpu().numpy() if uncertainty else None
    n = len(combos)
    e, g, rows = energy[:n].copy(), geo[:n].copy(), combos.copy()
    s = std[:n].copy() if uncertainty else None
    idx = np.flatnonzero(both)
    better = energy[n:] < e[idx]
    take = idx[better]
    e[take], g[take], rows[take] = energy[n:][better], geo[n:][better], swapped[better]
    if uncertainty:
        s[take] = std[n:][better]
    return rows, e, s, g, len(structures)


def _format_rows(start, elements, rows, energy, std, geometry) -> str:
    lines = []
    symbols = np.asarray(elements)[rows]
    for i in range(len(rows)):
        a, b, c, d = symbols[i]
        line = f"{start + i},{a},{b},{c},{d},{energy[i]:.6f}"
        if std is not None:
            line += f",{std[i]:.6f}"
        lines.append(line + f",{geometry[i, 0]:.6f},{geometry[i, 1]:.6f}")
    return "\n".join(lines) + "\n"


def lowest_energies(path: str | os.PathLike, n: int = 20) -> list[dict]:
    """The ``n`` rows with the lowest ``energy_ev_per_atom`` of a screen's CSV."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        col = header.index("energy_ev_per_atom")
        energies = np.array([float(row[col]) for row in reader])
    order = np.argsort(energies, kind="stable")[:n]
    wanted = {int(i): rank for rank, i in enumerate(order)}
    best: list[dict] = [{} for _ in order]
    with open(path, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for i, row in enumerate(reader):
            if i in wanted:
                best[wanted[i]] = dict(zip(header, row))
    return best
