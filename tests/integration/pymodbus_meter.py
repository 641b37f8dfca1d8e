#!/usr/bin/python3
"""An Eastron SDM630 as another Modbus implementation serves it: pymodbus
(Debian's python3-pymodbus), not dcem-sim, so that the agent is tested against
a server it shares no code with.

    pymodbus_meter.py PORT partial|full CT

Unit 1, partial: an SDM72D-like firmware on the SDM630 map, without the per-phase
power factors (0x001E-0x0023) and the per-phase import counters
(0x015A-0x015F); pymodbus's sparse block answers exception 02 for any read
that touches an address it does not hold, holes between registers included.
full: every register of configs/meters/eastron-sdm630.yaml, holes still
refused. Input registers (function 4), float32 ABCD. Units 2 and 3: Acrel
ADL400s behind current transformers, holding registers (function 3), serving
only their import counter (0x000A, u32 x 0.01 kWh: 1234.56 secondary), total
power (0x016A, s32 W) and their ratio registers (PT 0x008D = 1, CT 0x008E);
unit 2's CT register holds CT (0: a meter that lost its setting), unit 3's
always 200. Prints "ready" once listening; the values are fixed."""
import struct
import sys
import threading
import time

from pymodbus.datastore import ModbusServerContext, ModbusSlaveContext, ModbusSparseDataBlock
from pymodbus.server import StartTcpServer
from pymodbus.transaction import ModbusSocketFramer

port, mode, ct = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
values = {0x00: 230.1, 0x02: 231.2, 0x04: 229.9,  # V L1-L3
          0x06: 10.5, 0x08: 11.0, 0x0A: 9.8,      # I L1-L3
          0x0C: 2300.0, 0x0E: 2400.0, 0x10: 2100.0,  # P L1-L3, W
          0x34: 6800.0, 0x3E: 0.98, 0x46: 50.01,  # P total, PF total, Hz
          0x48: 12345.67, 0x4A: 1.5, 0x156: 12347.17}  # import, export, total kWh
if mode == "full":
    values.update({0x1E: 0.97, 0x20: 0.96, 0x22: 0.99,  # PF L1-L3
                   0x15A: 4100.0, 0x15C: 4200.0, 0x15E: 4045.67})  # import L1-L3
words = {}
for addr, v in values.items():
    hi, lo = struct.unpack(">HH", struct.pack(">f", v))
    words[addr], words[addr + 1] = hi, lo
unit = ModbusSlaveContext(ir=ModbusSparseDataBlock(words), hr=ModbusSparseDataBlock({0: 0}),
                          zero_mode=True)


def adl400(ct_word):
    kwh, w = 123456, 6800  # 1234.56 kWh and 6.8 kW at the meter's terminals
    hr = {0x000A: kwh >> 16, 0x000B: kwh & 0xFFFF, 0x016A: w >> 16, 0x016B: w & 0xFFFF,
          0x008D: 1, 0x008E: ct_word}
    return ModbusSlaveContext(hr=ModbusSparseDataBlock(hr), ir=ModbusSparseDataBlock({0: 0}),
                              zero_mode=True)


context = ModbusServerContext(slaves={1: unit, 2: adl400(ct), 3: adl400(200)}, single=False)


def say_ready():
    import socket
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            print("ready", flush=True)
            return
        except OSError:
            time.sleep(0.05)


threading.Thread(target=say_ready, daemon=True).start()
StartTcpServer(context=context, address=("127.0.0.1", port), framer=ModbusSocketFramer,
               allow_reuse_address=True)
