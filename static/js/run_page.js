// The run page opens at the step that needs the admin (or failed), unless a link names a step.
document.addEventListener("DOMContentLoaded", () => {
  if (window.location.hash) return;
  const step = document.querySelector(".step-card--needs-you, .step-card--failed");
  if (step) step.scrollIntoView({ block: "start" });
});
