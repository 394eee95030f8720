"""The anchor's life (core/phase.py): every legal path, and every other event refused."""
import itertools

import pytest

from scrun.core.phase import STATUS_OF, TRANSITIONS, Event, IllegalTransition, Phase, advance
from scrun.core.status import Status, can_delete, can_kill, can_pause, can_resume, can_start

pytestmark = pytest.mark.unit

EVENTS = (Event.CREATED, Event.LAUNCH, Event.TASKS_STARTED, Event.PAUSE, Event.RESUME, Event.ENDED)


@pytest.mark.parametrize("events, end", [
    ((Event.CREATED, Event.LAUNCH, Event.TASKS_STARTED, Event.ENDED), Phase.STOPPED),  # a container's whole life
    ((Event.ENDED,), Phase.STOPPED),                                                    # create failed
    ((Event.CREATED, Event.ENDED), Phase.STOPPED),                                      # deleted before start
    ((Event.CREATED, Event.LAUNCH, Event.ENDED), Phase.STOPPED),                        # never launched
    ((Event.CREATED, Event.LAUNCH), Phase.STARTING),
    ((Event.CREATED, Event.LAUNCH, Event.TASKS_STARTED, Event.PAUSE), Phase.PAUSED),
    ((Event.CREATED, Event.LAUNCH, Event.TASKS_STARTED, Event.PAUSE, Event.RESUME, Event.PAUSE, Event.ENDED),
     Phase.STOPPED),                                                                    # killed while paused
])
def test_the_paths_a_container_takes(events, end):
    phase = Phase.CREATING
    for event in events:
        phase = advance(phase, event)
    assert phase == end


@pytest.mark.parametrize("phase, event", [(p, e) for p, e in itertools.product(Phase.ALL, EVENTS)
                                          if (p, e) not in TRANSITIONS])
def test_every_other_event_is_an_illegal_transition(phase, event):
    with pytest.raises(IllegalTransition, match=f"{event!r} in phase {phase!r}"):
        advance(phase, event)


def test_stopped_is_final_and_every_phase_has_a_status():
    assert not [key for key in TRANSITIONS if key[0] == Phase.STOPPED]
    assert set(STATUS_OF) == set(Phase.ALL) and set(STATUS_OF.values()) == set(Status.ALL)


def test_the_verbs_each_phase_allows():
    """One set of predicates for the CLI (on the record's status) and the anchor (on its phase)."""
    verbs = (can_start, can_kill, can_delete, can_pause, can_resume)
    allowed = {p: tuple(verb(STATUS_OF[p]) for verb in verbs) for p in Phase.ALL}
    assert allowed == {
        Phase.CREATING: (False, True, False, False, False),
        Phase.CREATED: (True, True, True, False, False),
        Phase.STARTING: (False, True, False, True, False),  # the OCI status is running already
        Phase.RUNNING: (False, True, False, True, False),
        Phase.PAUSED: (False, True, False, False, True),
        Phase.STOPPED: (False, False, True, False, False),
    }
