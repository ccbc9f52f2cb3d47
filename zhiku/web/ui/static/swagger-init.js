// Starts the vendored Swagger UI on /api/docs (a file, not inline script: the page's CSP allows no other).
const root = document.getElementById("swagger-ui");
window.SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  domNode: root,
  deepLinking: true,
  validatorUrl: null, // the public validator is another site; nothing leaves this one
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
