// ONNX Runtime peer of bench_unet.c (--mode fwd): the universal ConditionalUNet exported by
// bench_unet_torch.py --export, CPU execution provider, intraOpNumThreads 2, all graph optimisations.
// Usage: node bench/bench_unet_onnx.js MODEL.onnx [size=256] [reps=5] [batch=1]
// Env: ORT_SPIN=0 turns off the intra-op pool's spinning (session.intra_op.allow_spinning; on by default).
const ort = require(require('path').join(__dirname, 'onnx/node_modules/onnxruntime-node'));

function random(n, lo, hi) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + Math.random() * (hi - lo);
  return a;
}

async function main() {
  const [model, s = '256', r = '5', b = '1'] = process.argv.slice(2);
  const size = parseInt(s), reps = parseInt(r), batch = parseInt(b);
  const spin = process.env.ORT_SPIN === '0' ? '0' : '1';
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 2, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: spin } } } });
  const img = [batch, 3, size, size], n = batch * 3 * size * size;
  const time = new Float32Array(batch);
  for (let i = 0; i < batch; i++) time[i] = 1 + Math.floor(Math.random() * 100);
  const feeds = {
    xt: new ort.Tensor('float32', random(n, -1, 1), img),
    cond: new ort.Tensor('float32', random(n, 0, 1), img),
    time: new ort.Tensor('float32', time, [batch]),
    degra: new ort.Tensor('float32', random(batch * 512, -0.1, 0.1), [batch, 512]),
    content: new ort.Tensor('float32', random(batch * 512, -0.1, 0.1), [batch, 512]),
  };
  const warm = 2, times = [];   // as bench_unet.c: two untimed runs
  for (let i = 0; i < reps + warm; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const sorted = times.slice(warm).sort((x, y) => x - y);
  const med = sorted[Math.floor(sorted.length / 2)];
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(`onnxrt   fwd   batch ${batch}: ${med.toFixed(3)} s/batch, ${size}x${size}, peak RSS ${rss.toFixed(0)} MB, ` +
              `threads 2, min ${sorted[0].toFixed(3)} s, spinning ${spin === '1' ? 'on' : 'off'}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
