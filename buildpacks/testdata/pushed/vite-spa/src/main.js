// A client-side router: /dashboard/42 is a route of the app, not a file.
const app = document.querySelector("#app");
app.textContent = `route ${location.pathname}`;
