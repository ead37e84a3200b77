// SPDX-License-Identifier: LGPL-2.1-or-later
// Helper of bench_ort.py: ONNX Runtime (onnxruntime-node, CPU execution provider) on one model.
//
//   node ort_rate.js ORT_DIR MODEL.onnx INPUT.f32 BATCH SIZE THREADS SECONDS OUTPUT.f32
//
// ORT_DIR holds node_modules/onnxruntime-node. The session runs with THREADS intra-op threads,
// one inter-op thread, sequential execution and graph optimisation 'all'. INPUT.f32 holds BATCH
// inputs [BATCH, 3, SIZE, SIZE] (raw float32); the first run's output goes to OUTPUT.f32, then
// the runs are timed for SECONDS (at least 3) after two warm-up runs. Prints "ort IMG/S".
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const [ortDir, model, input, batchArg, sizeArg, threadsArg, secondsArg, output] = process.argv.slice(2);
  if (!output) {
    console.error('usage: node ort_rate.js ORT_DIR MODEL INPUT BATCH SIZE THREADS SECONDS OUTPUT');
    process.exit(2);
  }
  const ort = require(path.join(path.resolve(ortDir), 'node_modules', 'onnxruntime-node'));
  const batch = Number(batchArg), size = Number(sizeArg), seconds = Number(secondsArg);
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: Number(threadsArg),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const bytes = fs.readFileSync(input);
  const data = new Float32Array(bytes.buffer, bytes.byteOffset, batch * 3 * size * size);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', Float32Array.from(data), [batch, 3, size, size]) };
  const first = await session.run(feeds);
  const out = first[session.outputNames[0]].data;
  fs.writeFileSync(output, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
  await session.run(feeds);
  let iters = 0;
  const t0 = process.hrtime.bigint();
  let elapsed = 0;
  do {
    await session.run(feeds);
    ++iters;
    elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  } while (elapsed < seconds || iters < 3);
  console.log(`ort ${(iters * batch) / elapsed}`);
}

main().catch((e) => {
  console.error(`ort_rate: ${e.message || e}`);
  process.exit(1);
});
