"""inkstream firmware for an RP2040 + 4-wire resistive panel (MicroPython).

Loop: answer host commands, sample the panel at RATE_HZ while started, send a SAMPLE frame for
each debounced report and a HEARTBEAT every second. Frames: inkstream_protocol.py.
Ctrl-C does not stop it (host commands may hold 0x03): hold BOOTSEL for a second to get the REPL.
"""
import hal
import inkstream_protocol as proto
from touch import PRESSURE_MAX, TouchFilter

RATE_HZ = 200
PERIOD_US = 1000000 // RATE_HZ
X_MAX = Y_MAX = 65535            # ADC counts (read_u16)
UNITS_PER_MM = X_MAX / 160.0     # a 160 mm panel; set to your panel's active width
HEARTBEAT_US = 1000000


def main():
    panel = hal.Panel()
    port = hal.UsbSerial()
    encoder = proto.FrameEncoder()
    commands = proto.CommandReader()
    touch = TouchFilter()
    session = hal.random_u16()
    streaming = False
    last = hal.ticks_us()
    elapsed = 0  # us since boot; ticks wrap at 2**30 and ticks_diff spans only 2**29, so count
    next_sample = last
    next_heartbeat = last

    def hello():
        return encoder.hello(X_MAX, Y_MAX, PRESSURE_MAX, UNITS_PER_MM, RATE_HZ, "rp2040-resistive", session)

    port.write(hello())  # announce ourselves at boot; the host may also ask with DESCRIBE
    while True:
        for command in commands.feed(port.read_available()):
            if command == proto.CMD_DESCRIBE:
                port.write(hello())
            elif command == proto.CMD_START:
                if not streaming:
                    next_sample = hal.ticks_us()  # from now on, no burst to catch up on idle time
                streaming = True
            elif command == proto.CMD_STOP:
                streaming = False
        now = hal.ticks_us()
        elapsed += hal.ticks_diff(now, last)
        last = now
        t_us = elapsed & 0xFFFFFFFF
        # The sample goes before a heartbeat due at the same time: the host takes a heartbeat
        # at the last sample's time, but drops a sample no later than the frame before it.
        if streaming and hal.ticks_diff(now, next_sample) >= 0:
            next_sample = hal.ticks_add(next_sample, PERIOD_US)
            x = panel.read_x()
            y = panel.read_y()
            z1, z2 = panel.read_z()
            report = touch.update(x, y, z1, z2)
            if report is not None:
                rx, ry, pressure, tip, proximity = report
                flags = (proto.FLAG_TIP if tip else 0) | (proto.FLAG_PROXIMITY if proximity else 0)
                port.write(encoder.sample(t_us, rx, ry, pressure, flags))
        if hal.ticks_diff(now, next_heartbeat) >= 0:
            port.write(encoder.heartbeat(t_us, streaming))
            next_heartbeat = hal.ticks_add(next_heartbeat, HEARTBEAT_US)
            if hal.leave_requested():
                break
        wait = hal.ticks_diff(next_sample, hal.ticks_us()) if streaming else 1000
        hal.sleep_us(min(wait, 1000))  # poll the host at least every millisecond
    port.close()


main()
