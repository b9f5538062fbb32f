"""The serial host port end to end in Amaranth's simulator: the host runtime
(`verdigris.boards.host`) against the real bridge and core (`BridgedCore`), frames as
verdigris.arch.serial_link defines them. A program's outputs and counters equal the
instruction simulator's, also when the line damages, drops or adds bytes."""

import dataclasses
import struct

import numpy as np
import pytest

from tests.support.bridged_core import SimulatedBoard
from tests.support.line_faults import byte_faults, frame_faults
from tests.support.tiny_models import calibration_inputs, conv, quantize
from verdigris.arch.config import load_config
from verdigris.arch.counters import activity_from_counters
from verdigris.arch.host_port import host_jobs, read_outputs
from verdigris.arch.serial_link import (
    MAX_PAYLOAD,
    RECORD_WORDS,
    Command,
    Flag,
    Status,
    crc16,
    encode_frame,
    parse_frame,
    read_main_payload,
    targets_payload,
    write_code_payload,
    write_main_payload,
)
from verdigris.boards.host import BoardHost, BoardLink, BoardRunError, LinkError
from verdigris.boards.soc import TRACKER_TARGETS
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.sim.host import quantize_input
from verdigris.sim.isasim import run_program

CONFIG = load_config("tiny")
ANSWER_CYCLES = (
    4000  # the host's timeout: over a full write's 2 cycles a byte, and idle_cycles (64)
)


@pytest.fixture(scope="module")
def conv_job():
    graph = import_model(quantize(conv(), samples=2), name="conv")
    program = compile_graph(graph, CONFIG)
    (graph_input,) = graph.inputs
    image = calibration_inputs(tuple(graph_input.tensor.shape), 1, seed=1)
    inputs = {graph_input.tensor.name: quantize_input(graph_input, image)}
    outputs, activity = run_program(program, inputs)
    (job,) = host_jobs([(program, inputs)])
    return program, job, outputs, activity


def _link(board: SimulatedBoard, retries: int = 8) -> BoardLink:
    return BoardLink(board, timeout=ANSWER_CYCLES * board.period, retries=retries)


def _assert_like_isasim(conv_job, result):
    program, _, outputs, activity = conv_job
    assert not result.error
    got = read_outputs(program, result.chunks)
    for name, value in outputs.items():
        np.testing.assert_array_equal(got[name], value)
    assert activity_from_counters(result.counters) == dataclasses.replace(activity, layers=())


def test_crc_is_ccitt_false():
    assert crc16(b"123456789") == 0x29B1  # the catalogued check value
    frame = encode_frame(Command.STATUS, 7)
    assert parse_frame(frame).sequence == 7


def test_a_program_runs_over_the_bridge_like_on_isasim(conv_job):
    _, job, _, _ = conv_job
    board = SimulatedBoard(CONFIG)
    link = _link(board)
    seen = []
    host = BoardHost(link, CONFIG)
    assert host.load_bytes([job, job]) == len(job.code) + 2 * job.memory.size
    _assert_like_isasim(conv_job, host.run(job, progress=seen.append))
    assert link.retried == 0
    assert seen[-1] == len(job.code) + job.memory.size
    # Again (memories as the first run left them): the code is there already.
    seen.clear()
    _assert_like_isasim(conv_job, host.run(job, progress=seen.append))
    assert seen[-1] == job.memory.size


def test_damaged_dropped_and_added_bytes_are_retried_not_believed(conv_job):
    """Bytes flipped, lost and added in both directions: every request is retried until its
    answer is intact, and the outputs and counters are still isasim's."""
    _, job, _, _ = conv_job
    to_board, board_hits = frame_faults(1, rate=0.3)
    to_host, host_hits = byte_faults(2, rate=0.004)
    board = SimulatedBoard(CONFIG, to_board=to_board, to_host=to_host)
    link = _link(board, retries=20)
    _assert_like_isasim(conv_job, BoardHost(link, CONFIG).run(job))
    assert all(board_hits.values()) and all(host_hits.values()), (board_hits, host_hits)
    assert link.retried >= sum(board_hits.values())


def test_a_retried_run_does_not_start_the_program_again(conv_job):
    """The answer to RUN is lost: the retry (same sequence number) answers OK without a
    second start. The same frame with a new sequence number does start it again."""
    _, job, _, activity = conv_job
    board = SimulatedBoard(CONFIG)
    link = _link(board)
    BoardHost(link, CONFIG).run(job)
    board.to_host = lambda _data: b""  # the next answer is lost
    run = encode_frame(Command.RUN, link.sequence)
    board.write(run)
    assert board.read(1, ANSWER_CYCLES * board.period) == b""
    board.to_host = lambda data: data
    board.write(run)  # the host's retry
    assert parse_frame(board.read(7, ANSWER_CYCLES * board.period)).code == Status.OK
    link.sequence += 1
    assert link.request(Command.STATUS)[0] == Flag.DONE  # done, not running
    link.request(Command.RUN)
    assert link.request(Command.STATUS)[0] & Flag.RUNNING  # a new RUN starts it
    assert activity.cycles > ANSWER_CYCLES // 4  # long enough to be seen running


def _exchange(board: SimulatedBoard, frame: bytes, answer_bytes: int = 7):
    board.write(frame)
    return parse_frame(board.read(answer_bytes, ANSWER_CYCLES * board.period))


def test_bad_requests_are_refused_and_not_acted_on():
    board = SimulatedBoard(CONFIG)
    words = CONFIG.main_memory_bytes // CONFIG.dma_bytes
    good = encode_frame(Command.WRITE_MAIN, 1, write_main_payload(0, b"\x11" * 8, 4))
    damaged = good[:-3] + bytes([good[-3] ^ 0x40]) + good[-2:]
    assert _exchange(board, damaged).code == Status.BAD_FRAME
    read = encode_frame(Command.READ_MAIN, 2, read_main_payload(0, 2))
    assert _exchange(board, read, 15).payload == bytes(8)  # the damaged write did nothing
    cases = {
        "unknown command": encode_frame(9, 3),
        "a payload on STATUS": encode_frame(Command.STATUS, 4, b"\x00"),
        "half a word": encode_frame(Command.WRITE_MAIN, 5, struct.pack("<I", 0) + b"\x01"),
        "half an instruction": encode_frame(Command.WRITE_CODE, 6, bytes(4 + 8)),
        "a read of no words": encode_frame(Command.READ_MAIN, 7, read_main_payload(0, 0)),
        "a read too long": encode_frame(
            Command.READ_MAIN, 8, read_main_payload(0, MAX_PAYLOAD // 4 + 1)
        ),
    }
    for what, frame in cases.items():
        assert _exchange(board, frame).code == Status.BAD_FRAME, what
    past = {
        "main memory": encode_frame(
            Command.WRITE_MAIN, 10, write_main_payload(words - 1, bytes(8), 4)
        ),
        "code memory": encode_frame(
            Command.WRITE_CODE, 11, write_code_payload(CONFIG.instruction_capacity, bytes(16))
        ),
        "a read": encode_frame(Command.READ_MAIN, 12, read_main_payload(words - 1, 2)),
        "the targets": encode_frame(
            Command.WRITE_TARGETS, 13, targets_payload(TRACKER_TARGETS - 1, [(0,) * 4] * 2)
        ),
        "the records": encode_frame(
            Command.READ_RECORDS, 14, read_main_payload(TRACKER_TARGETS * RECORD_WORDS - 1, 2)
        ),
    }
    for what, frame in past.items():
        assert _exchange(board, frame).code == Status.OUT_OF_RANGE, what
    # A header saying 60,000 bytes: refused once the line has been quiet, then all is well.
    board.write(b"\x56\x02\x0d\x60\xea" + bytes(100))
    assert parse_frame(board.read(7, ANSWER_CYCLES * board.period)).code == Status.BAD_FRAME
    assert _exchange(board, encode_frame(Command.STATUS, 14), 10).payload == bytes(3)


def test_a_frame_cut_short_is_given_up_and_the_next_one_served():
    board = SimulatedBoard(CONFIG)
    frame = encode_frame(Command.STATUS, 1)
    board.write(frame[:4])
    assert board.read(1, ANSWER_CYCLES * board.period) == b""
    assert _exchange(board, frame, 10).payload == bytes(3)


def test_a_board_of_another_config_is_refused_by_name():
    board = SimulatedBoard(CONFIG)
    other = dataclasses.replace(CONFIG, name="mine", acc_rows=256)
    with pytest.raises(BoardRunError, match="the board runs config 'tiny', not 'mine'"):
        BoardHost(_link(board), other)


def test_a_silent_line_fails_after_the_retries_naming_what_to_check():
    board = SimulatedBoard(CONFIG, to_host=lambda _data: b"")
    with pytest.raises(LinkError, match="no intact answer to IDENTIFY in 3 tries"):
        BoardHost(_link(board, retries=3), CONFIG)
