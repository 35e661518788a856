// The stack for integration tests: th-stack (tests/harness/stack_main.c)
// started as a child, its JSON line read, and stopped by closing its stdin
// ("fail" first when a test failed, so it keeps and prints the services' logs).
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Stack {
  bootstrap: string;
  database_url: string;
  http_port: number;
  tmpdir: string;
  stop(failed: boolean): Promise<void>;
}

const START_TIMEOUT_MS = 240_000;
const STOP_TIMEOUT_MS = 90_000;

export async function startStack(): Promise<Stack> {
  const bin = process.env.TH_STACK_BIN;
  if (!bin) throw new Error('TH_STACK_BIN is not set: run the tests through ctest (ctest -R client.typescript)');
  const child: ChildProcess = spawn(bin, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`th-stack was not up within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (l) => {
      clearTimeout(timer);
      rl.close();
      resolve(l);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`th-stack exited (${code}) before it was up`));
    });
    child.once('error', reject);
  });
  const info = JSON.parse(line) as Omit<Stack, 'stop'>;
  return {
    ...info,
    async stop(failed: boolean) {
      if (failed) child.stdin!.write('fail\n');
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
