// ONNX Runtime peer of bench_restore.c: one restoration with the official loop (test.py: DA-CLIP once, then
// sde.noise_state and reverse_posterior, 100 U-Net calls) in JS around two exported models, CPU execution
// provider, intraOpNumThreads 2, all graph optimisations:
//   DAENC.onnx  DaCLIP.encode_image(control=True), both ViT-B-32 towers (bench_restore_torch.py --export-daclip)
//   UNET.onnx   the universal ConditionalUNet (bench_unet_torch.py --export), dynamic size
// The CLIP view is a bilinear resize of the (square) image to 224 with the CLIP normalisation (PIL bicubic in
// the official code: a few ms either way). The IR-SDE schedule (cosine, max_sigma 50, T 100, eps 0.005,
// sample_T = steps) is computed in float64 here; the posterior step is element-wise on the Float32Arrays.
// Random weights (the exports' own), a random-texture input: the work does not depend on them.
// Prints the same line as bench_restore.c ("onnxrt   SxS restore: ... s/image ...").
// Usage: node bench/bench_restore_onnx.js DAENC.onnx UNET.onnx [size=256] [steps=100]
// Env: ORT_SPIN=0 turns off the intra-op pool's spinning (session.intra_op.allow_spinning; on by default).
const fs = require('fs');
const ort = require(require('path').join(__dirname, 'onnx/node_modules/onnxruntime-node'));

function vmHwmMb() {
  const m = /VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? parseInt(m[1]) / 1024 : -1;
}

function resetHwm() {
  try { fs.writeFileSync('/proc/self/clear_refs', '5'); return true; } catch (e) { return false; }
}

function gauss() {
  let u = 0;
  while (u === 0) u = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
}

// sde_utils.py IRSDE with sample_T = steps: thetas, thetas_cumsum, dt, sigma_bars (indices 0..steps)
function schedule(steps, maxSigma = 50 / 255, eps = 0.005) {
  const k = steps + 2, ac = [];
  for (let i = 0; i <= k; i++) ac.push(Math.cos(((i / k) + 0.008) / 1.008 * Math.PI * 0.5) ** 2);
  const theta = [], cum = [];
  for (let i = 1; i < k; i++) theta.push(1 - ac[i] / ac[0]);
  let s = 0;
  for (let i = 0; i <= steps; i++) { s += theta[i]; cum.push(s - theta[0]); }
  const dt = -Math.log(eps) / cum[steps];
  const sigmaBar = cum.map((c) => maxSigma * Math.sqrt(1 - Math.exp(-2 * c * dt)));
  return { steps, maxSigma, theta, cum, dt, sigmaBar, scale: 100 / steps };
}

// reverse_posterior_step in place: x0 from the noise, the posterior mean, + std * z
function posteriorStep(sd, x, mu, eps, t) {
  const a = Math.exp(-sd.theta[t] * sd.dt), b = Math.exp(-sd.cum[t] * sd.dt), c = Math.exp(-sd.cum[t - 1] * sd.dt);
  const term1 = a * (1 - c * c) / (1 - b * b), term2 = c * (1 - a * a) / (1 - b * b);
  const v = (1 - a * a) * (1 - c * c) / (1 - b * b);
  const std = Math.exp(0.5 * Math.log(Math.max(v, 1e-20 * sd.dt))) * sd.maxSigma;
  const inv = Math.exp(sd.cum[t] * sd.dt), sb = sd.sigmaBar[t];
  for (let i = 0; i < x.length; i++) {
    const x0 = (x[i] - mu[i] - sb * eps[i]) * inv + mu[i];
    x[i] = term1 * (x[i] - mu[i]) + term2 * (x0 - mu[i]) + mu[i] + std * gauss();
  }
}

// CHW image [3, n, n] -> the normalised [1, 3, 224, 224] CLIP view (bilinear)
function clipView(img, n) {
  const S = 224, mean = [0.48145466, 0.4578275, 0.40821073], sd = [0.26862954, 0.26130258, 0.27577711];
  const out = new Float32Array(3 * S * S), r = n / S;
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < S; y++)
      for (let x = 0; x < S; x++) {
        const fy = Math.min(Math.max((y + 0.5) * r - 0.5, 0), n - 1), fx = Math.min(Math.max((x + 0.5) * r - 0.5, 0), n - 1);
        const y0 = Math.floor(fy), x0 = Math.floor(fx), y1 = Math.min(y0 + 1, n - 1), x1 = Math.min(x0 + 1, n - 1);
        const wy = fy - y0, wx = fx - x0, p = img.subarray(c * n * n);
        const v = (1 - wy) * ((1 - wx) * p[y0 * n + x0] + wx * p[y0 * n + x1]) +
                  wy * ((1 - wx) * p[y1 * n + x0] + wx * p[y1 * n + x1]);
        out[(c * S + y) * S + x] = (v - mean[c]) / sd[c];
      }
  return out;
}

async function main() {
  const [daenc, unet, s = '256', st = '100'] = process.argv.slice(2);
  if (!daenc || !unet) {
    console.error('usage: node bench/bench_restore_onnx.js DAENC.onnx UNET.onnx [size] [steps]');
    process.exit(2);
  }
  const size = parseInt(s), steps = parseInt(st);
  const spin = process.env.ORT_SPIN === '0' ? '0' : '1';
  const opts = { intraOpNumThreads: 2, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all',
                 extra: { session: { intra_op: { allow_spinning: spin } } } };
  const t0 = process.hrtime.bigint();
  const enc = await ort.InferenceSession.create(daenc, opts);
  const net = await ort.InferenceSession.create(unet, opts);
  const sd = schedule(steps);
  const tLoad = Number(process.hrtime.bigint() - t0) / 1e9;
  const loadPeak = Math.max(vmHwmMb(), process.resourceUsage().maxRSS / 1024);
  const hwmReset = resetHwm();

  const n = 3 * size * size, lq = new Float32Array(n);   // a gradient with texture in [0, 1], CHW
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const t = Math.random() - 0.5, p = y * size + x;
      lq[p] = 0.2 + 0.6 * x / size + 0.1 * t;
      lq[size * size + p] = 0.2 + 0.6 * y / size + 0.1 * t;
      lq[2 * size * size + p] = 0.5 + 0.3 * t;
    }
  const t1 = process.hrtime.bigint();
  const e = await enc.run({ image: new ort.Tensor('float32', clipView(lq, size), [1, 3, 224, 224]) });
  const t2 = process.hrtime.bigint();
  const shape = [1, 3, size, size], x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = lq[i] + sd.maxSigma * gauss();           // noise_state
  const feeds = { cond: new ort.Tensor('float32', lq, shape), degra: e.degra, content: e.content };
  for (let t = steps; t >= 1; t--) {                                          // reverse_posterior
    feeds.xt = new ort.Tensor('float32', x, shape);
    feeds.time = new ort.Tensor('float32', new Float32Array([t * sd.scale]), [1]);
    const out = await net.run(feeds);
    posteriorStep(sd, x, lq, out.noise.data, t);
  }
  const img = new Uint8Array(n);                                               // tensor2img
  for (let i = 0; i < n; i++) img[i] = Math.round(Math.min(Math.max(x[i], 0), 1) * 255);
  const t3 = process.hrtime.bigint();
  const sec = (a, b) => Number(b - a) / 1e9;
  const restorePeak = vmHwmMb();
  const peak = Math.max(loadPeak, restorePeak, process.resourceUsage().maxRSS / 1024);
  console.log(`onnxrt   ${size}x${size} restore: ${sec(t1, t3).toFixed(2)} s/image, ${(sec(t2, t3) / steps).toFixed(3)} s/step, ` +
              `${steps} steps, load ${tLoad.toFixed(1)} s, DA-CLIP ${sec(t1, t2).toFixed(2)} s, sampling ${sec(t2, t3).toFixed(2)} s, ` +
              `peak RSS ${peak.toFixed(0)} MB, restoring ${hwmReset ? restorePeak.toFixed(0) + ' MB' : 'n/a'}, threads 2, ` +
              `spinning ${spin === '1' ? 'on' : 'off'}`);
}
main().catch((err) => { console.error(String(err && err.message ? err.message : err).split('\n')[0]); process.exit(1); });
