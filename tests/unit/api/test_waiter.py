"""Unit tests of the long-poll fan-out board (pure asyncio, no Redis)."""

from __future__ import annotations

import asyncio

from detectflow.api.waiter import DoneBoard


def test_done_board_one_announcement_wakes_every_reader_of_the_job():
    async def go():
        board = DoneBoard()
        events = [board.enter("a") for _ in range(3)]
        other = board.enter("b")
        assert len(board) == 4 and sorted(board.waited()) == ["a", "b"]
        readers = [asyncio.create_task(e.wait()) for e in events]
        assert board.announce("a") is True
        await asyncio.wait_for(asyncio.gather(*readers), 1)
        assert not other.is_set()

    asyncio.run(go())


def test_done_board_an_end_announced_before_the_wait_is_kept_until_the_reader_looks():
    async def go():
        board = DoneBoard()
        event = board.enter("a")  # registered first, then the job ends, then the reader awaits
        board.announce("a")
        await asyncio.wait_for(event.wait(), 1)

    asyncio.run(go())


def test_done_board_forgets_a_job_when_its_last_reader_leaves():
    async def go():
        board = DoneBoard()
        first, second = board.enter("a"), board.enter("a")
        assert first is second
        board.leave("a")
        assert board.waited() == ["a"]
        board.leave("a")
        assert board.waited() == [] and len(board) == 0
        assert board.announce("a") is False  # nobody waits: nothing kept
        assert not board.enter("a").is_set()  # a later reader starts afresh

    asyncio.run(go())
