"""Load one robot's exported ONNX policy, refuse anything unsafe, and run it.

This is the robot-side half of the model format that `swarm export` writes
(`robot_<i>.onnx`: input "obs" float32 [batch, obs_dim], output "cmd_vel"
float32 [batch, 2] in m/s and rad/s, the observation contract and provenance
in `metadata_props`). A model is only handed to a robot after every check
below has passed; each refusal is a `PolicyRejected` that names the file and
the reason, so an operator swapping policies on a fleet reads *why* at once.

Checks, in order: the file exists, is a regular file and is no larger than
a size limit (and lies inside an allowed folder, after resolving symlinks);
its sha256 is the expected one, when the caller pins one; onnxruntime can
load it; the metadata holds the contract and provenance keys,
with finite numbers in range; the weights hash matches
`policy.weights_sha256`; the graph takes only the robot's own observation and
returns cmd_vel; the contract fits the robot's; a warm-up inference is finite
and inside limits. Whatever goes wrong on the way (a file system error, an
exception from onnxruntime or a check) is a `PolicyRejected` too: a node
swapping policies live must refuse a bad file, never die of it.

Needs numpy and onnxruntime only (no torch, no onnx package, no rclpy): the
weights hash is computed by reading the protobuf wire format directly.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np

from swarm_contract.robot_io import Contract, ContractMismatch

INPUT_NAME = "obs"
OUTPUT_NAME = "cmd_vel"
POLICY_KEYS = (
    "policy.agent_id",
    "policy.run_id",
    "policy.config_hash",
    "policy.weights_sha256",
    "policy.name",
)
# Relative slack on the speed limits: float32 rounding of max*tanh(x) may land
# one ulp above the limit, which is not a policy asking for more speed.
LIMIT_SLACK = 1e-5
# The largest file `load` reads. An exported actor (two hidden layers of 256)
# is about 0.3 MB, so 64 MiB leaves room for much larger networks while a
# wrong path (a log, a data set, a sparse or growing file) is refused from its
# size alone, before a robot's computer spends its memory reading it.
MAX_POLICY_BYTES = 64 * 1024 * 1024
# Robot indices in `policy.agent_id`: far more robots than one fleet (one DDS
# domain) holds, small enough that the number is plainly a robot's index.
MAX_AGENT_ID = 9999
_AGENT_ID = re.compile(r"0|[1-9][0-9]*")


class PolicyRejected(ValueError):
    """A model was refused; the message says which file and why."""


class OnnxPolicy:
    """A validated ONNX policy for one robot: observation(s) in, (v, w) out.

    Build it with `OnnxPolicy.load`. `infer` is safe to call from several
    threads, but the node calls it from its control callbacks only.
    """

    def __init__(
        self,
        *,
        path: Path,
        session,
        contract: Contract,
        metadata: dict[str, str],
        sha256: str,
    ) -> None:
        self.path = path
        self.contract = contract
        self.metadata = dict(metadata)
        self.sha256 = sha256
        """sha256 of the whole file, as `sha256sum` prints it."""
        self.weights_sha256 = metadata["policy.weights_sha256"]
        self.agent_id = int(metadata["policy.agent_id"])
        self.name = metadata["policy.name"]
        self.run_id = metadata["policy.run_id"]
        self.load_time = 0.0
        """Seconds that loading and every check took (set by `load`)."""
        self.loaded_at = 0.0
        """Unix time at which the policy passed its checks."""
        self._session = session
        self._outputs = [OUTPUT_NAME]
        # The node calls infer every tick with one observation: reuse one
        # input buffer and feed dict instead of allocating per call.
        self._single = np.zeros((1, contract.obs_dim), dtype=np.float32)
        self._single_feed = {INPUT_NAME: self._single}
        self._single_lock = threading.Lock()

    # ------------------------------------------------------------------ #
    # Loading and validation.
    # ------------------------------------------------------------------ #

    @classmethod
    def load(
        cls,
        path: str | Path,
        robot_contract: Contract | None = None,
        allowed_dirs: Sequence[str | Path] | None = None,
        *,
        max_bytes: int = MAX_POLICY_BYTES,
        expected_sha256: str = "",
    ) -> OnnxPolicy:
        """Load and check a policy file; raise `PolicyRejected` on any problem.

        robot_contract: the contract this robot's sensors and code offer; the
            model's must fit it (speed limits may differ: the robot clamps to
            its own). None skips the check (the first model defines it).
        allowed_dirs: when given, the file (symlinks resolved) must lie inside
            one of these folders; None allows any folder.
        max_bytes: files larger than this are refused before they are read.
        expected_sha256: when given (hex, as `sha256sum` prints it), a file
            whose sha256 differs is refused, naming both hashes.

        Every failure, expected or not, is raised as `PolicyRejected` naming
        the file and the reason, so a caller needs to catch that one type.
        """
        started = time.perf_counter()
        shown = str(path)

        def refuse(reason: str) -> PolicyRejected:
            return PolicyRejected(f"policy {shown} refused: {reason}")

        try:
            policy = cls._load_checked(
                Path(path), robot_contract, allowed_dirs, max_bytes, expected_sha256, refuse
            )
        except PolicyRejected:
            raise
        except OSError as err:
            raise refuse(_file_system_reason(err)) from None
        except Exception as err:  # the last resort: refuse, whatever went wrong
            raise refuse(
                f"loading it failed with {type(err).__name__} ({_first_line(err)});"
                " it is not a policy this robot can run"
            ) from None
        policy.load_time = time.perf_counter() - started
        policy.loaded_at = time.time()
        return policy

    @classmethod
    def _load_checked(
        cls,
        path: Path,
        robot_contract: Contract | None,
        allowed_dirs: Sequence[str | Path] | None,
        max_bytes: int,
        expected_sha256: str,
        refuse: Callable[[str], PolicyRejected],
    ) -> OnnxPolicy:
        resolved = _existing_file(path, max_bytes, refuse)
        if allowed_dirs is not None:
            _check_inside(resolved, allowed_dirs, refuse)
        blob = _read_at_most(resolved, max_bytes, refuse)
        sha256 = hashlib.sha256(blob).hexdigest()
        # Before onnxruntime sees the bytes: a pinned model is the only one parsed.
        if expected_sha256 and sha256 != expected_sha256.strip().lower():
            raise refuse(
                f"its sha256 is {sha256}, but expected_sha256 is {expected_sha256.strip()};"
                " this is not the model the robot was told to accept (check the path, or"
                " set expected_sha256 to the new model's `sha256sum` together with policy_path)"
            )
        session = _open_session(blob, refuse)
        metadata = dict(session.get_modelmeta().custom_metadata_map)
        contract = _contract_from(metadata, refuse)
        _check_provenance(metadata, refuse)
        try:
            weights = weights_sha256(blob)
        except ValueError as err:
            raise refuse(str(err)) from None
        if weights != metadata["policy.weights_sha256"]:
            raise refuse(
                f"weights sha256 is {weights[:16]}..., metadata policy.weights_sha256 says"
                f" {metadata['policy.weights_sha256'][:16]}...: the weights were changed after"
                " export (or the file is damaged); re-export it with `swarm export`"
            )
        _check_graph_io(session, contract, refuse)
        if robot_contract is not None:
            try:
                contract.check_fits(robot_contract)
            except ContractMismatch as err:
                raise refuse(str(err)) from None

        policy = cls(
            path=resolved,
            session=session,
            contract=contract,
            metadata=metadata,
            sha256=sha256,
        )
        policy._warm_up(refuse)
        return policy

    def _warm_up(self, refuse) -> None:
        """Run the single-observation path on probe observations; check the output.

        Also pays onnxruntime's first-run costs here, off the control path.
        """
        c = self.contract
        beams = c.num_beams * c.scan_stack
        probes = {
            "open space, goal straight ahead, standing still": np.concatenate(
                [np.ones(beams), [1.0, 1.0, 0.0, 0.0, 0.0]]
            ),
            "walls touching all round, at the goal": np.concatenate(
                [np.zeros(beams), [0.0, 1.0, 0.0, 0.0, 0.0]]
            ),
        }
        for name, obs in probes.items():
            try:
                cmd = self.infer(obs.astype(np.float32))
            except Exception as err:  # onnxruntime raises its own error types
                raise refuse(f"warm-up inference failed on '{name}': {err}") from None
            v, w = float(cmd[0]), float(cmd[1])
            if not (math.isfinite(v) and math.isfinite(w)):
                raise refuse(f"warm-up on '{name}' gave non-finite cmd_vel ({v}, {w})")
            if abs(v) > c.max_linear * (1 + LIMIT_SLACK) or abs(w) > c.max_angular * (
                1 + LIMIT_SLACK
            ):
                raise refuse(
                    f"warm-up on '{name}' gave cmd_vel ({v:.4g} m/s, {w:.4g} rad/s) outside the"
                    f" model's limits (+-{c.max_linear} m/s, +-{c.max_angular} rad/s);"
                    " the exported graph must scale and clip its output"
                )

    # ------------------------------------------------------------------ #
    # Inference.
    # ------------------------------------------------------------------ #

    def infer(self, obs: np.ndarray) -> np.ndarray:
        """(obs_dim,) -> (2,) or (B, obs_dim) -> (B, 2): cmd_vel as (v m/s, w rad/s)."""
        obs = np.asarray(obs)
        dim = self.contract.obs_dim
        if obs.shape == (dim,):
            with self._single_lock:
                self._single[0] = obs
                return self._session.run(self._outputs, self._single_feed)[0][0]
        if obs.ndim == 2 and obs.shape[1] == dim:
            batch = np.ascontiguousarray(obs, dtype=np.float32)
            return self._session.run(self._outputs, {INPUT_NAME: batch})[0]
        raise ValueError(
            f"observation shape {obs.shape} does not fit policy {self.path.name}:"
            f" expected ({dim},) or (batch, {dim})"
        )

    def summary(self) -> dict[str, object]:
        """What is driving: for logs, the node's `~/active_policy` and `swarm` output."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "weights_sha256": self.weights_sha256,
            "name": self.name,
            "run_id": self.run_id,
            "agent_id": self.agent_id,
            "contract_version": self.contract.contract_version,
            "contract_digest": self.contract.digest(),
            "load_time_s": round(self.load_time, 6),
            "loaded_at": self.loaded_at,
        }

    def __repr__(self) -> str:
        return (
            f"OnnxPolicy({str(self.path)!r}, agent_id={self.agent_id}, sha256={self.sha256[:12]})"
        )


# ---------------------------------------------------------------------- #
# The individual checks.
# ---------------------------------------------------------------------- #


def _existing_file(path: Path, max_bytes: int, refuse) -> Path:
    """The resolved path of a regular file of at most max_bytes, from stat() alone."""
    try:
        info = path.stat()
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            raise refuse(
                "no such file; give the path of a robot_<i>.onnx written by `swarm export`"
            ) from None
        raise
    if stat.S_ISDIR(info.st_mode):
        raise refuse("not a regular file (it is a folder); give the path of a robot_<i>.onnx file")
    if not stat.S_ISREG(info.st_mode):
        # A FIFO or a device would block or never end when read.
        raise refuse("not a regular file; give the path of a robot_<i>.onnx file")
    if info.st_size > max_bytes:
        raise refuse(_too_big(info.st_size, max_bytes))
    return path.resolve()


def _read_at_most(path: Path, max_bytes: int, refuse) -> bytes:
    """The file's bytes; refused if it grew past max_bytes since stat() looked."""
    with path.open("rb") as file:
        blob = file.read(max_bytes + 1)
    if len(blob) > max_bytes:
        raise refuse(_too_big(len(blob), max_bytes))
    return blob


def _too_big(size: int, max_bytes: int) -> str:
    return (
        f"the file holds {size} bytes ({size / 2**20:.1f} MiB), more than the"
        f" {max_bytes} bytes ({max_bytes / 2**20:.1f} MiB) a policy may have (an exported"
        " actor is well under 1 MiB); check the path, or pass a larger max_bytes to"
        " OnnxPolicy.load for a model known to be that big"
    )


def _file_system_reason(err: OSError) -> str:
    """Why the file system would not hand over the file, and what to do about it."""
    where = f" ({err.filename})" if err.filename else ""
    if err.errno == errno.ENAMETOOLONG:
        name = str(err.filename or "")
        longest = max((len(part.encode()) for part in Path(name).parts), default=0)
        return (
            f"the file system refuses the path as too long{where}: its longest name is"
            f" {longest} bytes, the whole path {len(name.encode())} bytes (Linux allows"
            " 255 bytes per name and 4095 per path); rename or move the file"
        )
    if isinstance(err, PermissionError):
        return (
            f"permission denied{where}: this process (user id {os.geteuid()}) cannot reach or read"
            " it; make the file readable and every folder above it searchable by that user"
        )
    if err.errno == errno.ELOOP:
        return f"its symlinks loop{where}; point the path at the real robot_<i>.onnx file"
    if err.errno == errno.EISDIR:
        return "not a regular file (it is a folder); give the path of a robot_<i>.onnx file"
    code = errno.errorcode.get(err.errno, "?") if err.errno else type(err).__name__
    return f"the file cannot be read: {err.strerror or _first_line(err)} [{code}]{where}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _check_inside(resolved: Path, allowed_dirs: Sequence[str | Path], refuse) -> None:
    roots = [Path(d).expanduser().resolve() for d in allowed_dirs]
    if not any(resolved.is_relative_to(root) for root in roots):
        raise refuse(
            f"it resolves to {resolved}, outside the allowed policy folders"
            f" {[str(r) for r in roots]}; copy it into one of them or extend the allowed list"
        )


def _open_session(blob: bytes, refuse):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread, sequential: a robot's computer runs other nodes too, and a
    # small MLP gains nothing from a thread pool but pays for its wake-ups.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        # From bytes, not the path: what is checked is exactly what runs, even
        # if someone rewrites the file in between.
        return ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises several unrelated types
        raise refuse(f"onnxruntime cannot load it as an ONNX model ({_first_line(err)})") from None


def _contract_from(metadata: dict[str, str], refuse) -> Contract:
    try:
        contract = Contract.from_metadata(metadata)
    except (ContractMismatch, TypeError, ValueError) as err:
        raise refuse(f"bad contract metadata: {err}") from None
    for field in fields(Contract):
        value = getattr(contract, field.name)
        if field.type in (int, "int"):
            valid = isinstance(value, int) and not isinstance(value, bool)
            wanted = "a whole number"
        elif field.type in (float, "float"):
            valid = isinstance(value, (int, float)) and not isinstance(value, bool)
            valid = valid and math.isfinite(value)
            wanted = "a finite number"
        else:
            continue
        if not valid:
            raise refuse(
                f"bad contract metadata: contract.{field.name}="
                f"{metadata.get(f'contract.{field.name}')!r} is not {wanted}"
                f" (this robot's default is {getattr(Contract(), field.name)!r});"
                " re-export the model with `swarm export`"
            )
    return contract


def _check_provenance(metadata: dict[str, str], refuse) -> None:
    missing = [k for k in POLICY_KEYS if k not in metadata]
    if missing:
        raise refuse(
            f"metadata lacks {missing}; a policy needs {list(POLICY_KEYS)} (written by `swarm export`)"
        )
    agent = metadata["policy.agent_id"]
    # Decimal digits only, checked before int(): "Infinity", "nan", "1e999",
    # "-1" and "3.0" are refused here, never handed to int() or json.
    digits = agent.strip()
    if not _AGENT_ID.fullmatch(digits) or len(digits) > len(str(MAX_AGENT_ID)):
        agent_id = -1
    else:
        agent_id = int(digits)
    if not 0 <= agent_id <= MAX_AGENT_ID:
        raise refuse(
            f"metadata policy.agent_id={agent!r} is not a robot index (0, 1, 2, ...);"
            f" it must be a whole number from 0 to {MAX_AGENT_ID} written in decimal digits"
        )


def _check_graph_io(session, contract: Contract, refuse) -> None:
    inputs = session.get_inputs()
    described = [f"{i.name} {i.type} {i.shape}" for i in inputs]
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        raise refuse(
            f"the graph takes inputs {described}; a robot's policy takes exactly one input"
            f" '{INPUT_NAME}' (float32 [batch, {contract.obs_dim}]), its own observation."
            " Anything else (e.g. the critic's global state) is not available on a robot"
        )
    obs = inputs[0]
    width = obs.shape[-1] if len(obs.shape) == 2 else None
    if obs.type != "tensor(float)" or width != contract.obs_dim:
        raise refuse(
            f"input '{INPUT_NAME}' is {obs.type} {obs.shape}; the contract needs"
            f" tensor(float) [batch, {contract.obs_dim}]"
            f" ({contract.scan_stack}x{contract.num_beams} beams + 5)"
        )
    outputs = {o.name: o for o in session.get_outputs()}
    out = outputs.get(OUTPUT_NAME)
    if out is None or out.type != "tensor(float)" or len(out.shape) != 2 or out.shape[1] != 2:
        found = [f"{o.name} {o.type} {o.shape}" for o in outputs.values()]
        raise refuse(
            f"the graph outputs {found}; a policy must output '{OUTPUT_NAME}' as"
            " tensor(float) [batch, 2] (v m/s, w rad/s)"
        )


# ---------------------------------------------------------------------- #
# Weights hash, straight from the protobuf wire format.
# ---------------------------------------------------------------------- #

# ONNX protobuf field numbers (onnx.proto3).
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_DATA_TYPE = 2
_TENSOR_FLOAT_DATA = 4
_TENSOR_INT32_DATA = 5
_TENSOR_INT64_DATA = 7
_TENSOR_NAME = 8
_TENSOR_RAW_DATA = 9
_TENSOR_DOUBLE_DATA = 10
_TENSOR_DATA_LOCATION = 14
# TensorProto.DataType values whose typed storage we can turn into raw bytes.
_FLOAT, _INT32, _INT64, _DOUBLE = 1, 6, 7, 11


def weights_sha256(model_bytes: bytes) -> str:
    """sha256 of the initializers' raw little-endian bytes, concatenated in graph order.

    Equal to hashing `numpy_helper.to_array(t).tobytes()` for each initializer,
    which is what `swarm export` writes into `policy.weights_sha256`.
    Raises ValueError for a file that is not an ONNX protobuf or keeps its
    weights outside the file.
    """
    view = memoryview(model_bytes)
    digest = hashlib.sha256()
    graphs = [value for field, value in _fields(view) if field == _MODEL_GRAPH]
    if not graphs:
        raise ValueError("the file holds no ONNX graph")
    for graph in graphs:
        for field, value in _fields(graph):
            if field == _GRAPH_INITIALIZER:
                digest.update(_tensor_bytes(value))
    return digest.hexdigest()


def _tensor_bytes(tensor: memoryview) -> bytes:
    data_type, name, raw, location = 0, "?", None, 0
    typed: dict[int, list] = {}
    for field, value in _fields(tensor):
        if field == _TENSOR_DATA_TYPE:
            data_type = value
        elif field == _TENSOR_NAME:
            name = bytes(value).decode(errors="replace")
        elif field == _TENSOR_RAW_DATA:
            raw = bytes(value)
        elif field == _TENSOR_DATA_LOCATION:
            location = value
        elif field in (
            _TENSOR_FLOAT_DATA,
            _TENSOR_INT32_DATA,
            _TENSOR_INT64_DATA,
            _TENSOR_DOUBLE_DATA,
        ):
            typed.setdefault(field, []).append(value)
    if location == 1:
        raise ValueError(f"initializer {name!r} keeps its weights in an external file")
    if raw is not None:
        return raw
    # Typed storage: packed (bytes) or one value per field occurrence (int/bytes).
    if data_type == _FLOAT:
        return _fixed(typed.get(_TENSOR_FLOAT_DATA, []), "<f4")
    if data_type == _DOUBLE:
        return _fixed(typed.get(_TENSOR_DOUBLE_DATA, []), "<f8")
    if data_type in (_INT32, _INT64):
        field = _TENSOR_INT32_DATA if data_type == _INT32 else _TENSOR_INT64_DATA
        ints = []
        for item in typed.get(field, []):
            ints.extend(_varints(item) if isinstance(item, memoryview) else [item])
        signed = [i - (1 << 64) if i >= 1 << 63 else i for i in ints]
        return np.asarray(signed, dtype="<i4" if data_type == _INT32 else "<i8").tobytes()
    if not typed:
        return b""
    raise ValueError(
        f"initializer {name!r} (data type {data_type}) stores its values in a typed field;"
        " export with raw_data (what torch.onnx.export and onnx.numpy_helper write)"
    )


def _fixed(items: list, dtype: str) -> bytes:
    parts = []
    for item in items:
        if isinstance(item, memoryview):
            parts.append(bytes(item))
        else:  # unpacked: the field decoder already gave the fixed-width bytes
            parts.append(item)
    return np.frombuffer(b"".join(parts), dtype=dtype).tobytes()


def _fields(buf: memoryview) -> Iterator[tuple[int, object]]:
    """(field number, value) of one protobuf message; nested messages as memoryviews."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = bytes(buf[pos : pos + 8]), pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = bytes(buf[pos : pos + 4]), pos + 4
        else:
            raise ValueError(f"not an ONNX protobuf (wire type {wire} at byte {pos})")
        if pos > end:
            raise ValueError("not an ONNX protobuf (truncated field)")
        yield field, value


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("not an ONNX protobuf (bad varint)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _varints(packed: memoryview) -> list[int]:
    values, pos = [], 0
    while pos < len(packed):
        value, pos = _varint(packed, pos)
        values.append(value)
    return values
