import signal

import pytest

from textgen.stopping import Interrupted, StopRequest


def test_a_stop_outside_the_trainer_comes_at_once():
    stop = StopRequest()
    with pytest.raises(Interrupted) as caught:
        stop.request(signal.SIGTERM)
    assert caught.value.signum == signal.SIGTERM and stop.is_set()


def test_while_the_trainer_polls_the_first_stop_waits_and_a_second_comes_at_once():
    stop = StopRequest()
    with stop.polled():
        stop.request(signal.SIGINT)  # the trainer will see it at its next window
        assert stop.is_set() and stop.signum == signal.SIGINT
        with pytest.raises(Interrupted) as caught:
            stop.request(signal.SIGTERM)
        assert caught.value.signum == signal.SIGINT  # the first signal decides the exit status
    with pytest.raises(Interrupted):
        stop.check()


def test_nothing_asked_nothing_raised():
    stop = StopRequest()
    stop.check()
    assert not stop.is_set()
