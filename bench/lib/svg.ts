// A tiny SVG plot writer (no plotting library is available here): line plots
// with several series and grouped bar charts, with axes, ticks and a legend.
// Output is deterministic text, so plots diff well in git.

export interface LineSeries {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
}

export interface LinePlot {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  /** Draw each point as a step (value holds until the next point), like a cumulative byte count. */
  step?: boolean;
}

export interface BarGroup {
  label: string;
  values: number[];
}

export interface BarPlot {
  title: string;
  yLabel: string;
  /** One name per value in every group. */
  seriesNames: string[];
  groups: BarGroup[];
  /** Logarithmic y axis, for values spanning orders of magnitude. */
  logScale?: boolean;
}

const WIDTH = 640;
const HEIGHT = 360;
const MARGIN = { left: 70, right: 160, top: 36, bottom: 50 };
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right;
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom;
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf'];

export function linePlotSvg(plot: LinePlot): string {
  const all = plot.series.flatMap((s) => s.points);
  if (all.length === 0) throw new Error(`plot '${plot.title}' has no points`);
  const x = axisRange(all.map((p) => p[0]));
  const y = axisRange(
    all.map((p) => p[1]),
    true,
  );
  const sx = (v: number) => MARGIN.left + ((v - x.min) / (x.max - x.min)) * PLOT_W;
  const sy = (v: number) => MARGIN.top + PLOT_H - ((v - y.min) / (y.max - y.min)) * PLOT_H;
  const parts = [header(plot.title), ...axes(x, y, sx, sy, plot.xLabel, plot.yLabel)];
  plot.series.forEach((series, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const coords: string[] = [];
    series.points.forEach(([px, py], j) => {
      const prev = series.points[j - 1];
      if (plot.step && prev) coords.push(`${fmt(sx(px))},${fmt(sy(prev[1]))}`);
      coords.push(`${fmt(sx(px))},${fmt(sy(py))}`);
    });
    parts.push(
      `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${coords.join(' ')}"/>`,
      legendEntry(i, series.name, colour),
    );
  });
  parts.push('</svg>\n');
  return parts.join('\n');
}

export function barPlotSvg(plot: BarPlot): string {
  const values = plot.groups.flatMap((g) => g.values);
  if (values.length === 0) throw new Error(`plot '${plot.title}' has no bars`);
  for (const group of plot.groups) {
    if (group.values.length !== plot.seriesNames.length)
      throw new Error(`plot '${plot.title}': group '${group.label}' has ${group.values.length} values`);
  }
  const scale = plot.logScale ? logAxis(values) : axisRange(values, true);
  const sy = (v: number) => MARGIN.top + PLOT_H - scale.fraction(v) * PLOT_H;
  const groupWidth = PLOT_W / plot.groups.length;
  const barWidth = (groupWidth * 0.8) / plot.seriesNames.length;
  const parts = [header(plot.title)];
  parts.push(...yAxis(scale.ticks, sy, plot.yLabel), xAxisLine());
  plot.groups.forEach((group, g) => {
    const left = MARGIN.left + g * groupWidth + groupWidth * 0.1;
    group.values.forEach((value, s) => {
      const top = sy(value);
      parts.push(
        `<rect x="${fmt(left + s * barWidth)}" y="${fmt(top)}" width="${fmt(barWidth - 2)}" ` +
          `height="${fmt(MARGIN.top + PLOT_H - top)}" fill="${COLOURS[s % COLOURS.length]!}"/>`,
      );
    });
    parts.push(text(left + groupWidth * 0.4, MARGIN.top + PLOT_H + 18, group.label, 'middle'));
  });
  plot.seriesNames.forEach((name, s) => parts.push(legendEntry(s, name, COLOURS[s % COLOURS.length]!)));
  parts.push('</svg>\n');
  return parts.join('\n');
}

interface Range {
  min: number;
  max: number;
  ticks: number[];
}

/** A range with "nice" ticks (1, 2, 5 × 10^k) that covers every value. */
function axisRange(values: number[], fromZero = false): Range & { fraction(v: number): number } {
  let min = Math.min(...values);
  let max = Math.max(...values);
  if (fromZero) min = Math.min(0, min);
  if (max === min) max = min + 1;
  const rawStep = (max - min) / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rawStep));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rawStep)!;
  min = Math.floor(min / step) * step;
  max = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let t = min; t <= max + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  return { min, max, ticks, fraction: (v) => (v - min) / (max - min) };
}

function logAxis(values: number[]): Range & { fraction(v: number): number } {
  const positive = values.filter((v) => v > 0);
  const low = Math.floor(Math.log10(Math.min(...positive, 1)));
  const high = Math.max(low + 1, Math.ceil(Math.log10(Math.max(...positive, 1))));
  const ticks: number[] = [];
  for (let k = low; k <= high; k++) ticks.push(10 ** k);
  return {
    min: 10 ** low,
    max: 10 ** high,
    ticks,
    fraction: (v) => (v <= 0 ? 0 : (Math.log10(v) - low) / (high - low)),
  };
}

function header(title: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    text(MARGIN.left + PLOT_W / 2, 20, title, 'middle', 'font-size="14" font-weight="bold"'),
  ].join('\n');
}

function axes(
  x: Range,
  y: Range,
  sx: (v: number) => number,
  sy: (v: number) => number,
  xLabel: string,
  yLabel: string,
): string[] {
  const parts = [...yAxis(y.ticks, sy, yLabel), xAxisLine()];
  for (const tick of x.ticks) {
    parts.push(
      `<line x1="${fmt(sx(tick))}" y1="${MARGIN.top + PLOT_H}" x2="${fmt(sx(tick))}" y2="${MARGIN.top + PLOT_H + 5}" stroke="black"/>`,
      text(sx(tick), MARGIN.top + PLOT_H + 18, tickLabel(tick), 'middle'),
    );
  }
  parts.push(text(MARGIN.left + PLOT_W / 2, HEIGHT - 10, xLabel, 'middle'));
  return parts;
}

function yAxis(ticks: number[], sy: (v: number) => number, label: string): string[] {
  const parts = [
    `<line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" y2="${MARGIN.top + PLOT_H}" stroke="black"/>`,
  ];
  for (const tick of ticks) {
    parts.push(
      `<line x1="${MARGIN.left}" y1="${fmt(sy(tick))}" x2="${MARGIN.left + PLOT_W}" y2="${fmt(sy(tick))}" stroke="#ddd"/>`,
      text(MARGIN.left - 6, sy(tick) + 4, tickLabel(tick), 'end'),
    );
  }
  parts.push(
    text(
      16,
      MARGIN.top + PLOT_H / 2,
      label,
      'middle',
      `transform="rotate(-90 16 ${MARGIN.top + PLOT_H / 2})"`,
    ),
  );
  return parts;
}

function xAxisLine(): string {
  return `<line x1="${MARGIN.left}" y1="${MARGIN.top + PLOT_H}" x2="${MARGIN.left + PLOT_W}" y2="${MARGIN.top + PLOT_H}" stroke="black"/>`;
}

function legendEntry(index: number, name: string, colour: string): string {
  const y = MARGIN.top + 10 + index * 18;
  const x = MARGIN.left + PLOT_W + 12;
  return `<rect x="${x}" y="${y - 9}" width="12" height="12" fill="${colour}"/>\n${text(x + 18, y + 1, name, 'start')}`;
}

function text(x: number, y: number, content: string, anchor: string, extra = ''): string {
  return `<text x="${fmt(x)}" y="${fmt(y)}" text-anchor="${anchor}" ${extra}>${escapeXml(content)}</text>`;
}

function tickLabel(value: number): string {
  if (value !== 0 && (Math.abs(value) >= 1e5 || Math.abs(value) < 1e-3)) return value.toExponential(0);
  return String(Number(value.toPrecision(6)));
}

function fmt(value: number): string {
  return Number(value.toFixed(1)).toString();
}

function escapeXml(value: string): string {
  return value.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
