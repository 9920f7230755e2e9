"""Simulated ``rp2``: the BOOTSEL button is held from the scenario's ``bootsel_from_us`` on."""
import sim_board


def bootsel_button():
    start = sim_board.board.scenario.get("bootsel_from_us")
    return int(start is not None and sim_board.board.now_us >= start)
