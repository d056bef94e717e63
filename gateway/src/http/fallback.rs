//! Answers for what no route serves: an unknown path, a method a path does not take, and a form
//! the pages cannot read. Under `/api/` they are in the API's error shape; elsewhere they are
//! the site's own page, never the framework's plain text.

use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::http::render::{ProblemPage, page};

fn is_api(uri: &Uri) -> bool {
    uri.path().starts_with("/api/")
}

pub async fn not_found(uri: Uri) -> Response {
    if is_api(&uri) {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "There is no such path in this API.").into_response();
    }
    page(
        StatusCode::NOT_FOUND,
        ProblemPage { heading: "Page not found", message: "There is no page at this address.".into() },
    )
}

/// A path that exists, asked with another method; axum adds the `Allow` header.
pub async fn method_not_allowed(uri: Uri) -> Response {
    if is_api(&uri) {
        let message = "This path does not take that method; the Allow header lists those it takes.";
        return ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message).into_response();
    }
    let message = "This page cannot be used that way. Please go back and try again.".into();
    page(StatusCode::METHOD_NOT_ALLOWED, ProblemPage { heading: "Not possible", message })
}

/// A form as the pages post it; one that cannot be read gets the site's error page.
#[derive(FromRequest)]
#[from_request(via(axum::Form), rejection(FormProblem))]
pub struct PageForm<T>(pub T);

pub struct FormProblem(FormRejection);

impl From<FormRejection> for FormProblem {
    fn from(rejection: FormRejection) -> Self {
        FormProblem(rejection)
    }
}

impl IntoResponse for FormProblem {
    fn into_response(self) -> Response {
        let (status, message) = match self.0 {
            FormRejection::BytesRejection(ref too_large) if too_large.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, "The form sent more than this page takes.")
            }
            FormRejection::InvalidFormContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "The form was not sent as a web form.")
            }
            _ => (StatusCode::BAD_REQUEST, "The form could not be read. Please go back and try again."),
        };
        page(status, ProblemPage { heading: "The form could not be read", message: message.into() })
    }
}

/// A path parameter of the API. One that cannot be read (a flow id that is not UTF-8, say)
/// names nothing here: `404 not_found`, in the API's shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiPathProblem))]
pub struct ApiPath<T>(pub T);

pub struct ApiPathProblem;

impl From<PathRejection> for ApiPathProblem {
    fn from(_: PathRejection) -> Self {
        ApiPathProblem
    }
}

impl IntoResponse for ApiPathProblem {
    fn into_response(self) -> Response {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "There is nothing at this address.").into_response()
    }
}

/// A query string of the API; one that cannot be read is `400 invalid_query`, in the API's shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiQueryProblem))]
pub struct ApiQuery<T>(pub T);

pub struct ApiQueryProblem;

impl From<QueryRejection> for ApiQueryProblem {
    fn from(_: QueryRejection) -> Self {
        ApiQueryProblem
    }
}

impl IntoResponse for ApiQueryProblem {
    fn into_response(self) -> Response {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "The query string could not be read.").into_response()
    }
}

/// A path parameter of the pages; one that cannot be read gets the site's page-not-found.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(PagePathProblem))]
pub struct PagePath<T>(pub T);

pub struct PagePathProblem;

impl From<PathRejection> for PagePathProblem {
    fn from(_: PathRejection) -> Self {
        PagePathProblem
    }
}

impl IntoResponse for PagePathProblem {
    fn into_response(self) -> Response {
        page(
            StatusCode::NOT_FOUND,
            ProblemPage { heading: "Page not found", message: "There is no page at this address.".into() },
        )
    }
}

/// A query string of the pages; one that cannot be read (a field given twice, say) gets the
/// site's page, never the framework's plain text.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(PageQueryProblem))]
pub struct PageQuery<T>(pub T);

pub struct PageQueryProblem;

impl From<QueryRejection> for PageQueryProblem {
    fn from(_: QueryRejection) -> Self {
        PageQueryProblem
    }
}

impl IntoResponse for PageQueryProblem {
    fn into_response(self) -> Response {
        let message = "The address has a part this page cannot read. Please go back and try again.".into();
        page(StatusCode::BAD_REQUEST, ProblemPage { heading: "The address could not be read", message })
    }
}
