// Runs the reference firmware (firmware_bridge/firmware/*.py) in MicroPython's WebAssembly port
// on a simulated board (sim/*.py), and prints one JSON object on stdout:
//   {"uart_hex": <bytes the firmware wrote to its USB serial port>, "result": <sim_board's result>}
//
// usage: node run_firmware.mjs <micropython.mjs> <firmware dir> <scenario.json>
import { readFileSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const [mpModule, firmwareDir, scenarioPath] = process.argv.slice(2);
const simDir = join(dirname(fileURLToPath(import.meta.url)), "sim");
const { loadMicroPython } = await import(pathToFileURL(mpModule).href);

const uart = [];        // what the firmware writes to sys.stdout: the wire
const hostBytes = [];   // what the simulated host has sent and the firmware not yet read
const mp = await loadMicroPython({
  heapsize: 4 * 1024 * 1024,
  linebuffer: false,
  stdout: (bytes) => { for (const b of bytes) uart.push(b); },
  stderr: (bytes) => process.stderr.write(bytes),
  stdin: () => (hostBytes.length ? hostBytes.shift() : null),
});
mp.registerJsModule("sim_host", {
  push: (hex) => { for (const b of Buffer.from(hex, "hex")) hostBytes.push(b); },
  pending: () => hostBytes.length,
});

const copyPy = (from, to) => {
  mp.FS.mkdir(to);
  for (const name of readdirSync(from).filter((n) => n.endsWith(".py"))) {
    mp.FS.writeFile(join(to, name), readFileSync(join(from, name)));
  }
};
copyPy(firmwareDir, "/firmware");
copyPy(simDir, "/sim");
mp.FS.mkdir("/out");
mp.FS.writeFile("/scenario.json", readFileSync(scenarioPath));

mp.runPython(`
import sys
sys.path[:0] = ["/sim", "/firmware"]
import sim_board, sim_host
sim_board.run("/scenario.json", "/out/result.json", sim_host)
`);
const result = JSON.parse(new TextDecoder().decode(mp.FS.readFile("/out/result.json")));
process.stdout.write(JSON.stringify({ uart_hex: Buffer.from(uart).toString("hex"), result }) + "\n");
