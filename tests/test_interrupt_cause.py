"""An interrupt that arrives inside Ray's compiled `ray.wait` comes back as a SystemError whose cause is the
signal handler's exception; `conrec run` must still see it as the interrupt (one line, exit 143/130)."""

from cluster.run import Interrupted, _interruption


def _wrapped(inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as e:
            raise SystemError("<cyfunction CoreWorker.wait> returned a result with an exception set") from e
    except SystemError as outer:
        return outer


def test_interrupt_found_through_the_cause_chain():
    assert isinstance(_interruption(_wrapped(Interrupted(15))), Interrupted)
    assert isinstance(_interruption(_wrapped(KeyboardInterrupt())), KeyboardInterrupt)
    assert _interruption(_wrapped(ValueError("bad"))) is None
    assert _interruption(RuntimeError("plain")) is None
