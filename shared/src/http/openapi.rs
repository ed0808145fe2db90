//! The OpenAPI 3.1 document, assembled from the routers' own annotations so it cannot drift from
//! the code: each function contributes its paths; this adds the title and the bearer scheme.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};

pub fn document(parts: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Loyalty API")
                .version("1")
                .description(Some("Points, tiers, rewards and vouchers for mobile apps and POS systems. Errors are RFC 9457 application/problem+json."))
                .build(),
        )
        .build();
    for p in parts {
        doc.merge(p);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    doc
}
