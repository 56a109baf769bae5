// ONNX Runtime peer of bench_clip_image.c: the ViT-B/32 image tower exported by
// bench_clip_image_torch.py --export, CPU execution provider, intraOpNumThreads 2.
// Usage: node bench/bench_clip_image_onnx.js MODEL.onnx [batch] [reps]
const ort = require(require('path').join(__dirname, 'onnx/node_modules/onnxruntime-node'));

async function main() {
  const [model, b = '8', r = '5'] = process.argv.slice(2);
  const batch = parseInt(b), reps = parseInt(r);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 2, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
  const data = new Float32Array(batch * 3 * 224 * 224);
  for (let i = 0; i < data.length; i++) data[i] = Math.random() * 2 - 1;
  const feeds = { image: new ort.Tensor('float32', data, [batch, 3, 224, 224]) };
  const times = [];
  for (let i = 0; i <= reps; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const s = times.slice(1).sort((x, y) => x - y);
  const med = s[Math.floor(s.length / 2)];
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(`onnxrt   fwd   batch ${batch}: ${med.toFixed(3)} s/batch, ${(batch / med).toFixed(1)} img/s, ` +
              `peak RSS ${rss.toFixed(0)} MB, threads 2`);
}
main().catch((e) => { console.error(e); process.exit(1); });
