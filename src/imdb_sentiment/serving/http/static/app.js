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
});
