// operando live view: an image (slice, sinogram, map) drawn on a canvas, with axes, a
// colour bar, the value under the cursor, and a click or dragged box reported.
// A canvas costs the browser a millisecond or two per new image, where a plotting
// library's heatmap costs tens: the page redraws on every row, in 3 browsers at once,
// on the processor's cores.
"use strict";

// colour maps: evenly spaced stops (matplotlib's and ColorBrewer's published values)
const COLOUR_STOPS = {
  Viridis: ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"],
  Inferno: ["#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06", "#f7d13d", "#fcffa4"],
  Greys: ["#000000", "#ffffff"],
  RdBu: ["#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f"],
  Cividis: ["#00224e", "#123570", "#3b496c", "#575d6d", "#707173", "#8a8779", "#a69d75", "#c4b56c", "#e4cf5b", "#fee838"],
};
const LUTS = {};

function lut(name) {
  if (LUTS[name]) return LUTS[name];
  const stops = (COLOUR_STOPS[name] || COLOUR_STOPS.Viridis).map((h) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16)));
  const out = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const f = (i / 255) * (stops.length - 1), k = Math.min(stops.length - 2, Math.floor(f)), w = f - k;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = stops[k][c] * (1 - w) + stops[k + 1][c] * w;
  }
  return (LUTS[name] = out);
}

function niceTicks(a, b, n) {
  const lo = Math.min(a, b), hi = Math.max(a, b);
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

const fmt = (v) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(4))));

class ImageView {
  // el: the panel; opts: {xLabel, yLabel, square, onHover(r, c, v), onPick(r0, r1, c0, c1)}
  constructor(el, opts) {
    this.el = el;
    this.opts = opts;
    this.title = document.createElement("div");
    this.title.className = "title";
    this.canvas = document.createElement("canvas");
    this.el.replaceChildren(this.title, this.canvas);
    this.off = document.createElement("canvas");
    this.img = null;
    this.box = null; // [x, y] where a drag began
    const c = this.canvas;
    c.addEventListener("mousemove", (e) => this.hover(e));
    c.addEventListener("mousedown", (e) => { this.box = this.cell(e) && [e.offsetX, e.offsetY]; });
    c.addEventListener("mouseup", (e) => this.release(e));
    new ResizeObserver(() => this.render()).observe(this.el);
  }

  // img: {shape: [ny, nx], values: Float32Array}; how: {x, y, lo, hi, cmap, title, units}
  draw(img, how) {
    const [ny, nx] = img.shape;
    this.img = img;
    this.how = how;
    this.title.textContent = how.title;
    const colours = lut(how.cmap), span = how.hi - how.lo || 1;
    this.off.width = nx;
    this.off.height = ny;
    const ctx = this.off.getContext("2d"), data = ctx.createImageData(nx, ny), px = data.data;
    const flip = how.y.length > 1 && how.y[0] < how.y[how.y.length - 1]; // y grows upwards
    for (let r = 0; r < ny; r++) {
      const dst = (flip ? ny - 1 - r : r) * nx;
      for (let c = 0; c < nx; c++) {
        const v = img.values[r * nx + c], o = (dst + c) * 4;
        if (!Number.isFinite(v)) { px[o + 3] = 0; continue; }
        const k = Math.max(0, Math.min(255, Math.round(((v - how.lo) / span) * 255))) * 3;
        px[o] = colours[k]; px[o + 1] = colours[k + 1]; px[o + 2] = colours[k + 2]; px[o + 3] = 255;
      }
    }
    this.flip = flip;
    ctx.putImageData(data, 0, 0);
    this.render();
  }

  // where the image sits in the canvas (CSS pixels)
  frame() {
    const w = this.el.clientWidth, h = this.el.clientHeight - this.title.offsetHeight;
    const left = 56, right = 74, top = 6, bottom = 40;
    let iw = Math.max(10, w - left - right), ih = Math.max(10, h - top - bottom);
    if (this.opts.square && this.img) {
      const [ny, nx] = this.img.shape, s = Math.min(iw / nx, ih / ny);
      iw = s * nx; ih = s * ny;
    }
    return { w, h, left, top, iw, ih };
  }

  render() {
    if (!this.img) return;
    const f = this.frame(), dpr = window.devicePixelRatio || 1, c = this.canvas;
    const cw = Math.round(f.w * dpr), ch = Math.round(f.h * dpr);
    if (c.width !== cw || c.height !== ch) { // a new backing store only when resized
      c.width = cw; c.height = ch;
      c.style.width = `${f.w}px`; c.style.height = `${f.h}px`;
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, f.w, f.h);
    g.fillStyle = "#eef0f3";
    g.fillRect(f.left, f.top, f.iw, f.ih);
    g.imageSmoothingEnabled = false;
    g.drawImage(this.off, f.left, f.top, f.iw, f.ih);
    g.strokeStyle = "#888"; g.strokeRect(f.left, f.top, f.iw, f.ih);
    g.fillStyle = "#333"; g.font = "11px system-ui, sans-serif";
    const { x, y } = this.how, [ny, nx] = this.img.shape;
    const px = (v) => f.left + ((v - x[0]) / (x[nx - 1] - x[0] || 1)) * (nx - 1) * (f.iw / nx) + f.iw / nx / 2;
    const rowOf = (v) => (v - y[0]) / (y[ny - 1] - y[0] || 1) * (ny - 1);
    const py = (v) => f.top + ((this.flip ? ny - 1 - rowOf(v) : rowOf(v)) + 0.5) * (f.ih / ny);
    g.textAlign = "center"; g.textBaseline = "top";
    for (const t of niceTicks(x[0], x[nx - 1], 5)) { g.fillText(fmt(t), px(t), f.top + f.ih + 4); }
    g.fillText(this.opts.xLabel, f.left + f.iw / 2, f.top + f.ih + 20);
    g.textAlign = "right"; g.textBaseline = "middle";
    for (const t of niceTicks(y[0], y[ny - 1], 5)) { g.fillText(fmt(t), f.left - 4, py(t)); }
    g.save(); g.translate(12, f.top + f.ih / 2); g.rotate(-Math.PI / 2); g.textAlign = "center";
    g.fillText(this.opts.yLabel, 0, 0); g.restore();
    // the colour bar
    const bx = f.left + f.iw + 10, stops = COLOUR_STOPS[this.how.cmap] || COLOUR_STOPS.Viridis;
    const bar = g.createLinearGradient(0, f.top + f.ih, 0, f.top);
    stops.forEach((colour, k) => bar.addColorStop(k / (stops.length - 1), colour));
    g.fillStyle = bar;
    g.fillRect(bx, f.top, 12, f.ih);
    g.fillStyle = "#333"; g.textAlign = "left";
    g.fillText(fmt(this.how.hi), bx + 15, f.top + 5);
    g.fillText(fmt(this.how.lo), bx + 15, f.top + f.ih - 5);
    if (this.how.units) g.fillText(this.how.units, bx + 15, f.top + f.ih / 2);
  }

  // the image cell (row, column) under a mouse event, or null
  cell(e) {
    if (!this.img) return null;
    const f = this.frame(), [ny, nx] = this.img.shape;
    const c = Math.floor(((e.offsetX - f.left) / f.iw) * nx), rs = Math.floor(((e.offsetY - f.top) / f.ih) * ny);
    if (c < 0 || c >= nx || rs < 0 || rs >= ny) return null;
    return [this.flip ? ny - 1 - rs : rs, c];
  }

  hover(e) {
    const at = this.cell(e);
    if (at && this.opts.onHover) this.opts.onHover(at[0], at[1], this.img.values[at[0] * this.img.shape[1] + at[1]]);
  }

  release(e) {
    const start = this.box;
    this.box = null;
    const end = this.cell(e);
    if (!start || !end || !this.opts.onPick) return;
    const dragged = Math.hypot(e.offsetX - start[0], e.offsetY - start[1]) > 4;
    const from = dragged ? this.cell({ offsetX: start[0], offsetY: start[1] }) : end;
    this.opts.onPick(Math.min(from[0], end[0]), Math.max(from[0], end[0]), Math.min(from[1], end[1]), Math.max(from[1], end[1]));
  }
}
window.ImageView = ImageView;
