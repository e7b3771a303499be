// Progressive enhancement only: the form works without JavaScript.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("review-form");
  const textarea = document.getElementById("text");
  document.querySelectorAll("button.example").forEach((button) => {
    button.addEventListener("click", () => {
      textarea.value = button.dataset.text;
      textarea.focus();
    });
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  const feedback = document.getElementById("feedback");
  if (feedback) {
    const status = document.getElementById("feedback-status");
    const buttons = feedback.querySelectorAll("button.feedback-answer");
    buttons.forEach((button) => {
      button.addEventListener("click", async () => {
        const predicted = feedback.dataset.predicted;
        const other = predicted === "positive" ? "negative" : "positive";
        const label = button.dataset.correct === "true" ? predicted : other;
        buttons.forEach((b) => { b.disabled = true; });
        try {
          const response = await fetch(feedback.dataset.url, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ request_id: feedback.dataset.requestId, label: label }),
          });
          const body = await response.json();
          status.textContent = response.ok ? "Thanks, recorded." : body.detail;
          if (!response.ok && response.status !== 409) {
            buttons.forEach((b) => { b.disabled = false; });
          }
        } catch (error) {
          status.textContent = "Could not send the answer.";
          buttons.forEach((b) => { b.disabled = false; });
        }
      });
    });
  }
});
