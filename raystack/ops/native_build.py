"""Build a small C++ source into a shared library at first use and load it with ctypes.

Nothing is compiled at install time (the wheel builds without torch or a compiler). The
first call compiles with the system C++ compiler (about two seconds), keyed by a hash of the
source and the headers beside it, the flags, the compiler's version and the CPU, so a
cluster whose workers share a home directory but differ in CPU never loads a library built
for another machine:

    lib = load_library(Path("csrc/selective_scan_cpu.cpp"), "selective_scan_cpu")
    # -> ~/.cache/raystack/native/selective_scan_cpu-<16 hex>.so, loaded as ctypes.CDLL

Environment: ``CXX`` picks the compiler (default ``c++``, then ``g++``, ``clang++``);
``RAYSTACK_NATIVE_CACHE`` the cache folder (default ``$XDG_CACHE_HOME/raystack/native``).
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

COMPILE_TIMEOUT_S = 300


class NativeBuildError(RuntimeError):
    """The native library could not be compiled or loaded; the message says why."""


def compiler() -> str:
    """Path of the C++ compiler to use: ``$CXX`` if set, else the first of c++, g++, clang++."""
    wanted = os.environ.get("CXX")
    candidates = [wanted] if wanted else ["c++", "g++", "clang++"]
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    msg = f"no C++ compiler found (tried {', '.join(candidates)}); install g++ or point CXX at one"
    raise NativeBuildError(msg)


def compile_flags() -> list[str]:
    """Optimisation flags for this machine's CPU (the library is cached per CPU)."""
    flags = [
        "-O3",
        "-std=c++17",
        "-shared",
        "-fPIC",
        "-pthread",
        # vectorise the `#pragma omp simd` loops without linking an OpenMP runtime
        "-fopenmp-simd",
        # no errno and no FP traps let the exp/log loops vectorise; NaN/inf semantics stay
        "-fno-math-errno",
        "-fno-trapping-math",
        "-ffp-contract=fast",
    ]
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        flags += ["-march=native", "-mprefer-vector-width=512"]
    elif machine in ("aarch64", "arm64"):
        flags += ["-mcpu=native"]
    return flags


def cache_dir() -> Path:
    """Folder for built libraries; falls back to the temp folder if the default is read-only."""
    env = os.environ.get("RAYSTACK_NATIVE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "raystack" / "native"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / f"raystack-native-{os.getuid()}"
    return folder


def _cpu_signature() -> str:
    # -march=native bakes in the CPU's instruction sets, so they are part of the cache key.
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    keep = [line for line in text.splitlines() if line.startswith(("flags", "model name"))]
    return "\n".join(sorted(set(keep)))


def _compiler_version(cxx: str) -> str:
    try:
        done = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        msg = f"C++ compiler {cxx} does not run: {err}"
        raise NativeBuildError(msg) from err
    return done.stdout


def library_path(source: Path, name: str) -> tuple[Path, str, list[str]]:
    """Where the library for this source, compiler and CPU lives: (path, compiler, flags)."""
    cxx = compiler()
    flags = compile_flags()
    key = hashlib.sha256()
    # The kernels share headers beside them: an edited header must rebuild every library.
    headers = [h.read_bytes() for h in sorted(source.parent.glob("*.h"))]
    for part in (
        source.read_bytes(),
        *headers,
        " ".join(flags).encode(),
        _compiler_version(cxx).encode(),
        _cpu_signature().encode(),
    ):
        key.update(part)
        key.update(b"\0")
    return cache_dir() / f"{name}-{key.hexdigest()[:16]}.so", cxx, flags


def load_library(source: Path, name: str) -> ctypes.CDLL:
    """Compile ``source`` unless a cached build exists, then load it.

    Concurrent first calls (several Ray workers starting at once) serialise on a lock file;
    the library is written under a temporary name and renamed, so nobody loads a half-written
    file.

    Raises:
        NativeBuildError: no compiler, a failed compile (with the compiler's output), or a
            library that does not load.
    """
    if not source.is_file():
        msg = f"native source {source} is missing (is raystack installed without it?)"
        raise NativeBuildError(msg)
    target, cxx, flags = library_path(source, name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            with open(target.parent / f"{name}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not target.exists():
                    _compile(source, target, cxx, flags)
    except OSError as err:
        msg = f"cannot write the native library to {target.parent}: {err}"
        raise NativeBuildError(msg) from err
    try:
        return ctypes.CDLL(str(target))
    except OSError as err:
        msg = f"cannot load {target}: {err}"
        raise NativeBuildError(msg) from err


def _compile(source: Path, target: Path, cxx: str, flags: list[str]) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    cmd = [cxx, *flags, str(source), "-o", tmp]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        if done.returncode != 0:
            msg = (
                f"compiling {source.name} failed (exit {done.returncode}): {' '.join(cmd)}\n"
                f"{done.stderr[-2000:]}"
            )
            raise NativeBuildError(msg)
        os.replace(tmp, target)
    except (OSError, subprocess.SubprocessError) as err:
        msg = f"compiling {source.name} with {cxx} failed: {err}"
        raise NativeBuildError(msg) from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
