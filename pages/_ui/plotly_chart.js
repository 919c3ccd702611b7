// A Plotly figure drawn with Plotly's basic bundle (scatter, bar, pie: every trace the
// dashboard draws), served by the dashboard itself (static/). st.plotly_chart loads the full
// 4.7 MB bundle, whose evaluation alone holds the browser's only thread for most of a second
// before the first chart of a new session appears; the basic bundle is a quarter of it
// (docs/benchmarks.md, "Time to the first chart").
//
// data: {figure: JSON text of {data, layout}, bundle: address of the script, stretch: fill the parent's
// height instead of the layout's}. The figure's text takes the page's own text colour, so it
// follows Streamlit's light or dark theme as st.plotly_chart's theme did.

function loadPlotly(address) {
  // One script element per page, shared by every chart: the first chart starts the download,
  // the others wait for the same promise.
  if (!window.__allianceChartPlotly) {
    window.__allianceChartPlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = address;
      script.async = true;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => {
        window.__allianceChartPlotly = undefined; // a later chart may try again
        reject(new Error("could not load " + address));
      };
      document.head.appendChild(script);
    });
  }
  return window.__allianceChartPlotly;
}

function pageBackground(element) {
  // The first ancestor with a background of its own: the chart's boxes are transparent.
  for (let node = element; node && node.nodeType === 1; node = node.parentElement) {
    const colour = getComputedStyle(node).backgroundColor;
    if (colour && colour !== "transparent" && !/rgba\(.*,\s*0\)$/.test(colour)) {
      return colour;
    }
  }
  return "white";
}

function themed(layout, element) {
  const style = getComputedStyle(element);
  const template = layout.template || {};
  const templateLayout = template.layout || {};
  return {
    ...layout,
    template: {
      ...template,
      layout: {
        ...templateLayout,
        font: { color: style.color, ...(templateLayout.font || {}) },
        hoverlabel: { font: { color: style.color }, bgcolor: pageBackground(element) },
      },
    },
  };
}

function frameOf(parentElement) {
  // The chart and its full-screen button (st.plotly_chart's toolbar had one), in a frame that
  // goes full screen as a whole. The button shows on hover or keyboard focus, above the
  // chart's top edge as Streamlit's own element toolbar does, so it never covers the figure.
  let frame = parentElement.querySelector(".alliance-chart-frame");
  if (frame) return frame;
  frame = document.createElement("div");
  frame.className = "alliance-chart-frame";
  const chart = document.createElement("div");
  chart.className = "alliance-chart";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "alliance-chart-fullscreen";
  // Four corners: an icon drawn here (no font has a full-screen glyph everywhere).
  button.innerHTML =
    '<svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true">' +
    '<path fill="currentColor" d="M3 3h7v2H5v5H3zm11 0h7v7h-2V5h-5zM3 14h2v5h5v2H3zm16 0h2v7h-7v-2h5z"/></svg>';
  const label = () => {
    const full = document.fullscreenElement === frame;
    button.setAttribute("aria-label", full ? "Leave full screen" : "Show the chart full screen");
    button.title = button.getAttribute("aria-label");
  };
  label();
  button.addEventListener("click", () => {
    if (document.fullscreenElement === frame) {
      document.exitFullscreen();
    } else {
      frame.style.background = pageBackground(parentElement);
      frame.requestFullscreen?.();
    }
  });
  frame.addEventListener("fullscreenchange", () => {
    label();
    chart.__allianceRedraw?.();
  });
  frame.append(chart, button);
  parentElement.appendChild(frame);
  return frame;
}

export default function ({ data, parentElement }) {
  const frame = frameOf(parentElement);
  const chart = frame.querySelector(".alliance-chart");
  // The figure comes as JSON text: Streamlit passes it on without parsing and re-encoding it.
  const figure = JSON.parse(data.figure);
  chart.__allianceRedraw = () => {
    // Full screen, or a filled box: the chart takes its container's height, not the layout's.
    const full = document.fullscreenElement === frame;
    const fill = data.stretch || full;
    frame.style.height = fill ? "100%" : "";
    chart.style.height = fill ? "100%" : "";
    const layout = themed(figure.layout || {}, parentElement.host || chart);
    if (fill) {
      delete layout.height;
      layout.autosize = true;
    }
    const config = { ...(data.config || {}), responsive: true };
    loadPlotly(data.bundle)
      .then((Plotly) => {
        chart.removeAttribute("data-error");
        return Plotly.react(chart, figure.data || [], layout, config);
      })
      .catch((error) => {
        chart.setAttribute("data-error", String(error));
        chart.textContent = "The figure could not be drawn: " + error.message;
      });
  };
  chart.__allianceRedraw();
  // The column's width changes without a window resize (the sidebar folds, a phone turns):
  // one observer per chart, which redraws only when the width (or a filled height) changed.
  if (!chart.__allianceResize) {
    let last = "";
    chart.__allianceResize = new ResizeObserver((entries) => {
      const box = entries[0].contentRect;
      const size = `${Math.round(box.width)}x${chart.style.height ? Math.round(box.height) : 0}`;
      if (size !== last && window.Plotly && chart.classList.contains("js-plotly-plot")) {
        window.Plotly.Plots.resize(chart);
      }
      last = size;
    });
    chart.__allianceResize.observe(chart);
  }
  return () => {
    chart.__allianceResize?.disconnect();
    chart.__allianceResize = undefined;
    window.Plotly?.purge(chart);
  };
}
