// The demo's TypeScript producer (scripts/demo.sh): a few requests through
// call(), one line per result (--json: the results as objects). Reads
// KAFKA_BOOTSTRAP_SERVERS and the TALLY_*_TOPIC variables like the worker.
import { optionsFromEnv, stringifyJson, TallyClient, TallyResultError, type TallyResult } from '../src/index.js';

const json = process.argv.includes('--json');
const client = new TallyClient({ ...optionsFromEnv(), clientId: 'tally-demo-ts' });
const account = 'acct_demo_ts';

function show(r: TallyResult): void {
  if (json) {
    const { headers: _headers, ...rest } = r;
    console.log(stringifyJson(rest));
    return;
  }
  const what = r.status === 'ok' ? JSON.stringify(r.result).slice(0, 100) : `${r.error.code} (${r.error.field ?? '-'}): ${r.error.message}`;
  console.log(`  ts ${r.type.padEnd(16)} ${r.status.padEnd(5)} ${what}${r.replayed ? " (replayed)" : ""}`);
}

async function attempt(p: Promise<TallyResult>): Promise<void> {
  try {
    show(await p);
  } catch (e) {
    if (!(e instanceof TallyResultError)) throw e;
    show(e.result);
  }
}

try {
  await attempt(client.call(account, 'settings.get', {}));
  const paid = await client.call(account, 'payment.record', { external_id: 'pi_ts_demo', amount: 1999n, currency: 'usd' }, { id: 'ts-demo-1' });
  show(paid);
  await attempt(client.call(account, 'payment.refund', { payment_id: paid.result.payment.id, amount: 5000 }));
  await attempt(client.call(account, 'payment.get', { payment_id: paid.result.payment.id }));
  // The same id again: the stored answer, replayed.
  await attempt(client.call(account, 'payment.record', { external_id: 'pi_ts_demo', amount: 1999n, currency: 'usd' }, { id: 'ts-demo-1' }));
} finally {
  await client.close();
}
