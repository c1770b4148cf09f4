// Small conveniences only: every page works without this script.
document.addEventListener("DOMContentLoaded", () => {
  // The referral link's Copy button (hidden without JavaScript).
  for (const button of document.querySelectorAll("button.copy")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(button.dataset.copy);
        button.textContent = "Copied";
      } catch (e) {
        button.textContent = "Select the link to copy it";
      }
    });
  }
  // The campaign form shows the field of the chosen effect only.
  const radios = document.querySelectorAll("input[name=effect]");
  const sync = () => {
    const chosen = document.querySelector("input[name=effect]:checked");
    for (const field of document.querySelectorAll("[data-effect]")) {
      field.hidden = chosen && field.dataset.effect !== chosen.value;
    }
  };
  radios.forEach((r) => r.addEventListener("change", sync));
  sync();
});
