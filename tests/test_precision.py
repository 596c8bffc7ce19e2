"""Mixed precision: the amp setting's rules, and the CPU detection they rest on."""

from __future__ import annotations

import pytest
import torch

import raystack.precision as precision
from raystack.precision import autocast, autocast_dtype, check_amp, cpu_has_amx_bf16

CPU = torch.device("cpu")


def _cpuinfo(tmp_path, flags: str):
    p = tmp_path / f"cpuinfo-{abs(hash(flags))}"
    p.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n"
                 f"processor\t: 1\nflags\t\t: {flags}\n")
    return str(p)


def test_amx_bf16_is_read_from_the_cpu_flags(tmp_path, monkeypatch):
    monkeypatch.setattr(precision.platform, "system", lambda: "Linux")
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
    assert cpu_has_amx_bf16(_cpuinfo(tmp_path, "fpu sse avx512f amx_bf16 amx_tile"))
    # avx512_bf16 alone (no tiles) is not AMX; neither is a flag that merely contains it
    assert not cpu_has_amx_bf16(_cpuinfo(tmp_path, "fpu avx512_bf16 amx_tile"))
    assert not cpu_has_amx_bf16(_cpuinfo(tmp_path, "fpu xamx_bf16y"))
    assert not cpu_has_amx_bf16(str(tmp_path / "missing"))


def test_amx_is_never_claimed_off_linux_x86(tmp_path, monkeypatch):
    path = _cpuinfo(tmp_path, "amx_bf16 amx_tile")
    monkeypatch.setattr(precision.platform, "system", lambda: "Darwin")
    assert not cpu_has_amx_bf16(path + "?darwin")  # another cache key


@pytest.mark.parametrize("amx", [False, True])
def test_auto_picks_bf16_on_cpu_only_for_a_recipe_that_asks_on_amx(monkeypatch, amx):
    monkeypatch.setattr(precision, "cpu_has_amx_bf16", lambda: amx)
    assert autocast_dtype("auto", CPU) is None  # scoring
    assert autocast_dtype("auto", CPU, cpu_bf16=False) is None  # small presets
    assert autocast_dtype("auto", CPU, cpu_bf16=True) == (torch.bfloat16 if amx else None)
    # an explicit choice is taken as given, and "off" always wins
    assert autocast_dtype("bf16", CPU) == torch.bfloat16
    assert autocast_dtype("fp16", "cpu") == torch.float16
    assert autocast_dtype("off", CPU, cpu_bf16=True) is None
    assert autocast_dtype(False, CPU, cpu_bf16=True) is None


def test_auto_on_cuda_is_bf16_where_the_gpu_has_it(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert autocast_dtype("auto", cuda) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert autocast_dtype(True, cuda) == torch.float16


def test_an_unknown_mode_names_the_valid_ones():
    with pytest.raises(ValueError, match="amp='bf61': choose one of auto, off, bf16, fp16"):
        check_amp("bf61")
    assert check_amp(None) == "off" and check_amp(True) == "auto"


def test_autocast_runs_matmuls_in_the_dtype_and_none_leaves_float32():
    a = torch.randn(4, 8)
    with autocast(torch.bfloat16, "cpu"):
        assert (a @ a.T).dtype == torch.bfloat16
    with autocast(None, "cpu"):
        assert (a @ a.T).dtype == torch.float32
