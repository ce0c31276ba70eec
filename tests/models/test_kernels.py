"""Compiled loops load numba only in the processes that run one."""

import subprocess
import sys
import textwrap


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, check=True, timeout=300)
    return out.stdout.split()


def test_models_import_and_build_without_numba_until_a_kernel_runs() -> None:
    seen = _run("""
        import sys
        from predictor.engine import Engine
        from predictor.models import linear_stack, risk
        Engine()  # every plug-in built, nothing learned
        print("numba" in sys.modules, risk._learn_risk.compiled)
        model = risk.OnlineRisk()
        for i in range(20):
            model.learn_one({"a": float(i), "b": 1.0}, i % 3 == 0)
        # The first call compiled the kernel and what it calls, and rebound their names.
        print("numba" in sys.modules, type(risk._learn_risk).__name__,
              type(risk.log_loss_gradient).__name__, type(risk._bins).__name__,
              type(linear_stack.scaled_step).__name__)
    """)
    assert seen == ["False", "False", "True", "CPUDispatcher", "CPUDispatcher",
                    "CPUDispatcher", "Kernel"]


def test_a_kernel_computes_what_its_python_does() -> None:
    from predictor.models.linear_stack import log_loss_gradient

    for raw, y in ((0.3, 1.0), (-2.0, 0.0), (25.0, 0.0), (-25.0, 1.0)):
        assert log_loss_gradient(raw, y) == log_loss_gradient.py_func(raw, y)
    assert log_loss_gradient(0.0, 1.0) == -0.5
    assert log_loss_gradient(0.0, 0.0) == 0.5
