// Explore's pictures drawn in this page: the model's decoder (exported as ONNX by the server,
// playground/onnx_export.py) runs in the browser with onnxruntime-web (WebAssembly, vendored in
// ui/vendor/onnxruntime-web: nothing is fetched from the internet), so a slider answers without a
// round trip to the server. The page turns slider values into the latent exactly as
// playground.explore.Explorer.z_from does, from the "plan" the server sends with every new point
// (Explorer.browser_plan), and paints the picture as the server's to_uint8 would.
//
// Grids (the latent map, an interpolation, a traversal, every class) are drawn here too: the
// server sends their latents and class weights (Explorer.grid_plan), the page decodes them in one
// batch and lays them out as viz.image_grid does. Listeners that make a picture ask canDraw()
// first (PAGE_JS in ui/explore_tab.py), so the server sends numbers instead of pictures.
//
// The server stays the fallback: a model the exporter cannot handle (plan.reason), a browser
// without WebAssembly, a decoder that failed to load, or "Draw in this browser" unticked. Then
// the server's /decode draws, as every slider did before. #explore-path says which path is live.
(() => {
  "use strict";
  const self = document.currentScript || Array.from(document.scripts).find((s) => /explore_decode\.js/.test(s.src));
  const ORT_DIR = new URL("../vendor/onnxruntime-web/", self.src).href;
  const state = {
    ort: null,            // a promise of the runtime, loaded on first use
    sessions: new Map(),  // decoder URL -> promise of its InferenceSession
    failed: new Map(),    // decoder URL -> why it could not be used
    ready: new Set(),     // decoder URLs loaded and ready to run
    runtimeFailed: null,  // why onnxruntime-web could not start, if it could not
    plan: null,           // the newest plan from the server, and the "draw in this browser" box
    inBrowser: true,
    pending: null,        // the newest request not drawn yet (older ones are dropped)
    running: false,
    last: null,           // what was drawn last: {x, rgba, width, height, ms, z, w}
    lastGrid: null,       // the last grid drawn: {width, height, ms, n}
    grids: 0,             // grids drawn in this page
    latest: null,         // the newest slider request (values, class controls) since the last new point
    drawn: 0,             // pictures drawn in this page
    path: null,           // "browser" or "server": the path live now
  };

  function loadRuntime() {
    if (!state.ort) {
      state.ort = new Promise((resolve, reject) => {
        if (window.ort) return resolve(window.ort);
        const s = document.createElement("script");
        s.src = ORT_DIR + "ort.wasm.min.js";
        s.onload = () => (window.ort ? resolve(window.ort) : reject(new Error("onnxruntime-web did not start")));
        s.onerror = () => reject(new Error("could not load onnxruntime-web from the server"));
        document.head.appendChild(s);
      }).then(async (ort) => {
        // the runtime's WebAssembly is kept gzipped (3.8 MB, not 14.8: a class's LAN carries it once
        // per student); the browser unpacks it
        const r = await fetch(ORT_DIR + "ort-wasm-simd-threaded.wasm.gz");
        if (!r.ok) throw new Error("could not load the runtime's WebAssembly from the server");
        ort.env.wasm.wasmBinary = await new Response(r.body.pipeThrough(new DecompressionStream("gzip"))).arrayBuffer();
        ort.env.wasm.wasmPaths = ORT_DIR;
        ort.env.wasm.numThreads = 1;  // threads need a cross-origin isolated page; one is plenty for one picture
        return ort;
      });
      state.ort.catch((e) => (state.runtimeFailed = String((e && e.message) || e)));
    }
    return state.ort;
  }

  function decoderUrl(plan) {
    return plan && plan.decoder ? new URL(plan.decoder, document.baseURI).href : null;
  }

  function session(url) {
    if (!state.sessions.has(url)) {
      const p = loadRuntime().then((ort) => ort.InferenceSession.create(url, {executionProviders: ["wasm"], graphOptimizationLevel: "all"}));
      p.then(() => state.ready.add(url), (e) => state.failed.set(url, String((e && e.message) || e)));
      state.sessions.set(url, p);
    }
    return state.sessions.get(url);
  }

  // Why the server draws, or null when this page can.
  function serverReason(plan, inBrowser) {
    if (!plan) return "no model is picked yet";
    if (plan.reason) return plan.reason;
    if (inBrowser === false) return "drawing in this browser is turned off";
    if (typeof WebAssembly !== "object") return "this browser has no WebAssembly";
    const url = decoderUrl(plan);
    if (!url) return "the decoder is being prepared for this browser";
    if (state.failed.has(url)) return "the decoder could not run here (" + state.failed.get(url) + ")";
    return null;
  }

  function say(path, text) {
    state.path = path;
    const box = document.querySelector("#explore-path");
    if (!box) return;
    let line = box.querySelector(".pg-path");
    if (!line) {
      line = document.createElement("div");
      line.className = "pg-path caption";
      box.appendChild(line);
    }
    line.dataset.path = path;
    line.textContent = text;
  }

  // The latent, as Explorer.z_from computes it in float32: the sliders' coordinates set over the
  // current point's, then each direction added by its amount.
  function latent(plan, values, alphas) {
    const f = Math.fround;
    const z = Float32Array.from(plan.base);
    plan.sliders.forEach((d, i) => { if (i < values.length) z[d] = f(Number(values[i]) || 0); });
    plan.directions.forEach((u, j) => {
      const a = f(Number(alphas[j]) || 0);
      if (a) for (let k = 0; k < z.length; k++) z[k] = f(z[k] + f(a * u[k]));
    });
    return z;
  }

  // A conditional model's class weights, as models._common.class_weights makes them from the
  // class picker: the class one-hot, blended with another, plus the "more like" amounts.
  function classWeights(plan, label, other, mix, more) {
    const k = plan.classes;
    if (!k) return null;
    if (label === null || label === undefined) return Float32Array.from(plan.w);
    const w = new Float32Array(k);
    w[Math.max(0, Number(label))] = 1;
    const b = other === null || other === undefined ? -1 : Number(other), m = Math.fround(Number(mix) || 0);
    if (b >= 0 && m > 0) {
      for (let i = 0; i < k; i++) w[i] = Math.fround(w[i] * Math.fround(1 - m));
      w[b] = Math.fround(w[b] + m);
    }
    for (let i = 0; i < Math.min(k, more.length); i++) w[i] = Math.fround(w[i] + (Number(more[i]) || 0));
    return w;
  }

  function roundHalfEven(t) {  // torch.round
    const r = Math.round(t);
    return Math.abs(t % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  function level(v) {  // a value in [0, 1] as 8 bits, in float32 and rounded as torch
    return roundHalfEven(Math.fround(Math.min(1, Math.max(0, v)) * 255));
  }

  // The decoded picture as explore.to_uint8(x) makes it: grey to RGB, 8 bits, rounded as torch.
  function paint(plan, x) {
    const [c, h, w] = plan.shape, n = h * w;
    const rgba = new Uint8ClampedArray(n * 4);
    for (let i = 0; i < n; i++) {
      for (let ch = 0; ch < 3; ch++) rgba[i * 4 + ch] = level(x[(c === 1 ? 0 : ch) * n + i]);
      rgba[i * 4 + 3] = 255;
    }
    // the picture at the model's own size: the page scales it up with crisp pixels (CSS
    // image-rendering: pixelated, as for the server's pictures), which costs less than encoding a
    // picture `scale` times larger
    const pic = {rgba, width: w, height: h};
    const img = document.querySelector("#explore-image img");
    if (img) img.src = pngUrl(pic);
    return pic;
  }

  // x for n latents z (n * latent_dim numbers) and class weights w (n * classes, or null)
  async function decode(plan, z, w, n = 1) {
    const ort = await loadRuntime();
    const sess = await session(decoderUrl(plan));
    const feeds = {z: new ort.Tensor("float32", z, [n, plan.latent_dim])};
    if (w) feeds.w = new ort.Tensor("float32", w, [n, w.length / n]);
    const out = await sess.run(feeds);
    return out.x.data;
  }

  // A grid of pictures as viz.image_grid lays them out: `nrow` a row, `pad` pixels of grey
  // `background` around each, every pixel repeated `scale` times each way. Returns the RGBA.
  function layGrid(g, x) {
    const [c, h, w] = g.shape, n = g.z.length, cols = g.nrow, rows = Math.ceil(n / cols), p = g.pad, s = g.scale;
    const gw = cols * (w + p) + p, gh = rows * (h + p) + p, W = gw * s, H = gh * s;
    const small = new Uint8ClampedArray(gw * gh * 4).fill(level(g.background));  // the grid at scale 1
    for (let k = 3; k < small.length; k += 4) small[k] = 255;
    const size = c * h * w;
    for (let i = 0; i < n; i++) {
      const r0 = p + Math.floor(i / cols) * (h + p), c0 = p + (i % cols) * (w + p);
      for (let y = 0; y < h; y++) {
        for (let xx = 0; xx < w; xx++) {
          const o = ((r0 + y) * gw + c0 + xx) * 4;
          for (let ch = 0; ch < 3; ch++) small[o + ch] = level(x[i * size + (c === 1 ? 0 : ch) * h * w + y * w + xx]);
        }
      }
    }
    if (s === 1) return {rgba: small, width: W, height: H};
    const big = new Uint32Array(W * H), from = new Uint32Array(small.buffer);  // a pixel at a time
    for (let y = 0; y < H; y++) {
      const row = Math.floor(y / s) * gw;
      for (let xx = 0; xx < W; xx++) big[y * W + xx] = from[row + Math.floor(xx / s)];
    }
    return {rgba: new Uint8ClampedArray(big.buffer), width: W, height: H};
  }

  function pngUrl({rgba, width, height}) {
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    canvas.getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
    return canvas.toDataURL("image/png");
  }

  // The server's /decode, asked directly (the endpoint the hidden #explore-server-decode button
  // calls: pressing the button from a script costs Gradio's event machinery ~30 ms more a move).
  async function askServer(reason, req) {
    say("server", "Pictures drawn on the server: " + reason + ".");
    const plan = req.plan, session = window.__gradio_session_hash__;
    if (!plan || plan.decode_fn === undefined || !session) {
      const button = document.querySelector("#explore-server-decode");
      if (button) button.click();
      return;
    }
    const n = plan.n_sliders, k = plan.n_directions;
    const pad = (xs, m) => Array.from({length: m}, (_, i) => (i < xs.length ? Number(xs[i]) || 0 : 0));
    const body = {data: [null, ...pad(req.values, n), ...pad(req.alphas, k)], fn_index: plan.decode_fn, session_hash: session};
    try {
      const r = await fetch(new URL("gradio_api/run/predict", document.baseURI), {
        method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
      });
      const out = await r.json();
      const pic = out && out.data && out.data[0];
      if (!r.ok || !pic || !pic.url) throw new Error((out && out.error) || r.statusText);
      const img = document.querySelector("#explore-image img");
      if (img) img.src = pic.url;
    } catch (e) {
      say("server", "Pictures drawn on the server: " + reason + ". It could not draw the last one (" + String((e && e.message) || e) + ").");
    }
  }

  async function drawOne(req) {
    const {plan, inBrowser, values, alphas, label, other, mix, more} = req;
    const reason = serverReason(plan, inBrowser);
    if (reason && req.classOnly) return;  // the server draws the class when the slider is let go
    if (reason) return req.fromServer ? say("server", "Pictures drawn on the server: " + reason + ".") : askServer(reason, req);
    const t0 = performance.now();
    try {
      const z = latent(plan, values, alphas);
      const w = classWeights(plan, label, other, mix, more);
      const x = await decode(plan, z, w);
      const pic = paint(plan, x);
      const ms = performance.now() - t0;
      state.last = {x: Array.from(x), ...pic, rgba: Array.from(pic.rgba), ms, z: Array.from(z), w: w && Array.from(w)};
      state.drawn += 1;
      say("browser", `Pictures drawn in this browser (onnxruntime-web, WebAssembly): ${ms.toFixed(1)} ms for the last one.`);
    } catch (e) {
      state.failed.set(decoderUrl(plan), String((e && e.message) || e));
      if (!req.fromServer) await askServer(serverReason(plan, inBrowser), req);
    }
  }

  async function pump() {
    if (state.running) return;
    state.running = true;
    try {
      while (state.pending) {
        const req = state.pending;
        state.pending = null;
        await drawOne(req);
      }
    } finally {
      state.running = false;
    }
  }

  function request(req) {
    state.pending = req;
    pump();
  }

  // (plan, inBrowser, label, other, mix, ..."more like" amounts (plan.n_more), ...latent sliders,
  // ...direction sliders): the inputs of Explore's slider listeners
  function sliderRequest([plan, inBrowser, label, other, mix, ...rest]) {
    const k = plan ? plan.n_more : 10;
    const more = rest.slice(0, k), sliders = rest.slice(k);
    const n = plan ? plan.n_sliders : sliders.length;
    return {plan, inBrowser, label, other, mix, more, values: sliders.slice(0, n), alphas: sliders.slice(n)};
  }

  // A slider's own input event, heard before Gradio's listener (which comes ~5 ms later, after
  // Gradio's event dispatch): while the page draws, the moved slider's new value over the newest
  // request is drawn at once. Gradio's listener then finds nothing new to draw.
  const SLIDER_ID = /^(z|pc)(\d+)$/;  // the latent and direction sliders (the class ones go through Gradio)
  function sliderOf(el) {
    for (let node = el; node && node !== document.body; node = node.parentElement) {
      const m = node.id && SLIDER_ID.exec(node.id);
      if (m) return m;
    }
    return null;
  }
  document.addEventListener("input", (ev) => {
    const el = ev.target;
    if (state.path !== "browser" || !state.latest || !(el instanceof HTMLInputElement) || el.type !== "range") return;
    const m = sliderOf(el);
    if (!m) return;
    const req = {...state.latest, values: state.latest.values.slice(), alphas: state.latest.alphas.slice(), more: state.latest.more.slice()};
    const i = Number(m[2]), v = Number(el.value);
    (m[1] === "z" ? req.values : req.alphas)[i] = v;
    request((state.latest = req));
  }, true);

  function same(a, b) {
    return a.length === b.length && a.every((x, i) => Number(x) === Number(b[i]));
  }

  // Explore's listeners call these (ui/explore_tab.py).
  window.pgExplore = {
    // whether this page will draw a new model's pictures, once its decoder is ready (asked before
    // a model is shown: the server then leaves the latent map to the page)
    willDraw() {
      return state.inBrowser !== false && typeof WebAssembly === "object" && !state.runtimeFailed;
    },
    // whether this page draws the pictures itself now (asked before a listener makes a picture)
    canDraw() {
      const url = decoderUrl(state.plan);
      return !serverReason(state.plan, state.inBrowser) && state.ready.has(url);
    },
    // a grid's numbers from the server (Explorer.grid_plan): returns the picture for the grid's
    // image (its value as Gradio takes it), or `current` where the server drew it. When this
    // page cannot draw it after all, it presses the grid's button again (g.retry), and the
    // server draws it.
    async drawGrid(g, current) {
      if (!g || !g.decoder) return current;
      const t0 = performance.now();
      try {
        const z = Float32Array.from(g.z.flat()), w = g.w ? Float32Array.from(g.w.flat()) : null;
        const x = await decode(g, z, w, g.z.length);
        const pic = layGrid(g, x);
        const url = pngUrl(pic);
        state.lastGrid = {width: pic.width, height: pic.height, n: g.z.length, ms: performance.now() - t0};
        state.grids += 1;
        return {url, path: null, orig_name: "drawn-in-this-browser.png", meta: {_type: "gradio.FileData"}};
      } catch (e) {
        state.failed.set(decoderUrl(g), String((e && e.message) || e));
        say("server", "Pictures drawn on the server: " + serverReason(state.plan, state.inBrowser) + ".");
        const again = g.retry && document.querySelector("#" + g.retry);
        if (again) setTimeout(() => again.click(), 0);
        return current;
      }
    },
    // a latent or direction slider moved (see sliderRequest)
    slide(...args) {
      const req = sliderRequest(args), last = state.latest;
      state.inBrowser = req.inBrowser;
      const drawn = last && last.plan && req.plan && last.plan.version === req.plan.version && last.inBrowser === req.inBrowser && last.label === req.label && last.other === req.other
        && last.mix === req.mix && same(last.values, req.values) && same(last.alphas, req.alphas) && same(last.more, req.more);
      state.latest = req;
      if (!drawn || state.path !== "browser") request(req);
    },
    // the class blend or a "more like" slider moved (the same arguments): drawn here while the
    // page can; otherwise the server draws it when the slider is let go
    slideClass(...args) {
      request({...(state.latest = sliderRequest(args)), classOnly: true});
    },
    // a new plan from the server: load its decoder, and where the page can draw, draw what the
    // plan says: point "new" (a model, a seed, an encoded picture: the sliders were set to it),
    // "same" (a class picked or let go: the same sliders, another class), or nothing (the
    // decoder is ready). The server sent its own picture as well; this one replaces it with the
    // same pixels.
    planChanged(plan, inBrowser) {
      if (!plan) return;
      state.plan = plan;
      state.inBrowser = inBrowser;
      const reason = serverReason(plan, inBrowser);
      const url = decoderUrl(plan);
      const drawn = plan.server_drew !== false;  // else the server left the picture to this page
      if (plan.point === "new") state.latest = null;  // the sliders were set to the new point
      if (!(url && !plan.reason && inBrowser !== false && typeof WebAssembly === "object") || state.failed.has(url)) {
        if (drawn || !plan.point) return say("server", "Pictures drawn on the server: " + reason + ".");
        return askServer(reason, {plan, values: plan.values, alphas: plan.alphas});
      }
      if (!state.ready.has(url)) say("server", "Preparing to draw in this browser…");
      session(url).then(() => {
        const here = {plan, inBrowser, values: plan.values, alphas: plan.alphas, label: null, more: [], fromServer: drawn};
        if (plan.point === "new") {
          state.latest = {...here, fromServer: false};
          request(here);  // drops an older move waiting: it was for the point before
        } else if (plan.point === "same") {  // the class changed, not the point: the sliders as they are now
          // (label null: the plan's class weights, the server's, until Gradio's next call brings the picker's)
          state.latest = state.latest ? {...state.latest, plan, label: null, fromServer: false} : {...here, fromServer: false};
          if (state.pending) state.pending.plan = plan;
          else request({...state.latest, fromServer: drawn});
        } else {
          say("browser", "Pictures drawn in this browser (onnxruntime-web, WebAssembly): move a slider.");
        }
      }, () => {
        const why = serverReason(plan, inBrowser);
        if (drawn || !plan.point) say("server", "Pictures drawn on the server: " + why + ".");
        else askServer(why, {plan, values: plan.values, alphas: plan.alphas});
      });
    },
    state,
    latent,
    classWeights,
    layGrid,
  };
})();
