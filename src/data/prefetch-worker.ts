/**
 * Worker thread of the prefetcher: opens its own copy of the dataset (and its own
 * ONNX Runtime sessions, one intra-op thread by default) and builds the batches it is
 * asked for, one at a time, posting the tensors back without copying.
 */
import { parentPort } from 'node:worker_threads';
import { openDataset, type Dataset, type DatasetSpec } from './datasets.js';
import { setDataThreads, releaseDataSessions } from './degrade/runtime.js';
import { makeBatch, transferList, type BatchJob } from './prefetch.js';

type Msg = { type: 'init'; spec: DatasetSpec; threads: number } | ({ type: 'batch'; id: number } & BatchJob) | { type: 'close' };

const port = parentPort;
if (!port) throw new Error('prefetch-worker.js must run in a worker thread');

let dataset: Dataset | null = null;
let chain: Promise<void> = Promise.resolve();

function message(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split('\n')[0]!.trim() || 'unknown error';
}

port.on('message', (msg: Msg) => {
  if (msg.type === 'init') {
    chain = chain.then(async () => {
      try {
        await setDataThreads(msg.threads);
        dataset = await openDataset(msg.spec);
        port.postMessage({ type: 'ready', size: dataset.size });
      } catch (e) {
        port.postMessage({ type: 'init-error', message: message(e) });
      }
    });
  } else if (msg.type === 'batch') {
    chain = chain.then(async () => {
      try {
        if (!dataset) throw new Error('dataset is not open');
        const batch = await makeBatch(dataset, msg);
        port.postMessage({ type: 'batch', id: msg.id, batch }, transferList(batch));
      } catch (e) {
        port.postMessage({ type: 'error', id: msg.id, message: message(e) });
      }
    });
  } else if (msg.type === 'close') {
    chain = chain.then(async () => {
      await dataset?.close?.();
      await releaseDataSessions();
      port.close();
    });
  }
});
