"""The EMR clients without a server: error classes, names, state maps against botocore's models, specs, locators."""

from __future__ import annotations

import re

import botocore.exceptions as bex
import botocore.session
import pytest

from durable_jobs.clients.emr import (
    CLUSTER_STATES,
    STEP_STATES,
    EmrCluster,
    EmrClusterClient,
    EmrStep,
    EmrStepClient,
    named,
)
from durable_jobs.clients.emr.aws import TOKEN_TAG, join_uri
from durable_jobs.clients.emr.aws_config import AwsConfig
from durable_jobs.clients.emr.aws_errors import AwsAuthError, AwsRequestError, Throttled, classify, endpoint_wide
from durable_jobs.clients.emr.eks import EmrEksClient, EmrEksJob
from durable_jobs.clients.emr.eks import run_name as eks_name
from durable_jobs.clients.emr.serverless import EmrServerlessClient, EmrServerlessJob
from durable_jobs.errors import (
    AnswerTooLarge,
    AuthError,
    MalformedAnswer,
    PermanentError,
    RecordError,
    RedirectRefused,
    TransientError,
)
from durable_jobs.record import make_token
from durable_jobs.status import JobState

TOKEN = make_token("dag", "run", "task", -1, 0)
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CONFIG = AwsConfig(region_name="eu-west-1", aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key=SECRET)


def client_error(code: str, status: int, message: str = "msg", headers: dict[str, str] | None = None) -> Exception:
    return bex.ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
        },
        "AddJobFlowSteps",
    )


# --- error classes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("TooManyRequestsException", 429),
        ("RequestLimitExceeded", 400),
        ("Throttling", 400),
        ("SomethingNew", 429),
        ("ServiceUnavailable", 503),
        ("InternalServerException", 500),
        ("InternalFailure", 500),
        ("", 502),
    ],
)
def test_throttling_and_5xx_are_transient(code: str, status: int):
    err = classify(client_error(code, status), what="add step", label="aws_x")
    assert isinstance(err, TransientError), err
    assert "add step" in str(err)


def test_retry_after_header_is_kept():
    err = classify(client_error("TooManyRequestsException", 429, headers={"Retry-After": "7"}), what="x", label="c")
    assert isinstance(err, TransientError) and err.retry_after == 7.0


@pytest.mark.parametrize("code", ["AccessDeniedException", "AccessDenied", "UnrecognizedClientException"])
def test_refused_credentials_fail_fast_with_a_clear_message(code: str):
    err = classify(client_error(code, 400, "User: arn:x is not authorized"), what="start run", label="aws_prod")
    assert isinstance(err, AuthError)
    text = str(err)
    assert "start run" in text and "aws_prod" in text and "not authorized" in text and "retrying will not help" in text


@pytest.mark.parametrize(
    ("code", "not_found"),
    [("ValidationException", False), ("ResourceNotFoundException", True), ("InvalidRequestException", False)],
)
def test_invalid_requests_are_permanent_with_their_code(code: str, not_found: bool):
    err = classify(client_error(code, 400, "bad"), what="w", label="c")
    assert isinstance(err, AwsRequestError) and not isinstance(err, TransientError)
    assert err.code == code and err.not_found is not_found


@pytest.mark.parametrize(
    "code", ["ExpiredToken", "InvalidClientTokenId", "UnrecognizedClientException", "InvalidSignatureException",
             "SignatureDoesNotMatch"],
)  # fmt: skip
def test_refused_credentials_are_about_the_endpoint_and_denials_about_one_call(code: str):
    refused = classify(client_error(code, 400), what="w", label="c")
    assert isinstance(refused, AwsAuthError) and refused.credentials_refused and endpoint_wide(refused)
    denied = classify(client_error("AccessDeniedException", 400), what="w", label="c")
    assert isinstance(denied, AwsAuthError) and not denied.credentials_refused and not endpoint_wide(denied)
    page = classify(client_error("", 401, "<html>401</html>"), what="w", label="c")  # a proxy's 401: no AWS code
    assert isinstance(page, AwsAuthError) and endpoint_wide(page)
    assert isinstance(classify(client_error("ThrottlingException", 400), what="w", label="c"), Throttled)


@pytest.mark.parametrize(("code", "status"), [("", 400), ("404", 404), ("<html>", 409), ("", 300)])
def test_an_error_answer_without_an_aws_code_is_malformed_not_a_refusal(code: str, status: int):
    err = classify(client_error(code, status, "<html><body>Bad gateway config</body></html>"), what="w", label="c")
    assert isinstance(err, MalformedAnswer) and "without an AWS error code" in str(err)


def test_our_session_refusals_keep_their_class_through_botocore():
    redirect = RedirectRefused("moved", status=307, location="http://evil:1/x")
    wrapped = classify(bex.HTTPClientError(error=redirect), what="describe step", label="c")
    assert isinstance(wrapped, RedirectRefused) and wrapped.connect_failed and "describe step" in str(wrapped)
    assert not endpoint_wide(wrapped)  # a redirect proves nothing about the endpoint's other jobs
    big = classify(bex.HTTPClientError(error=AnswerTooLarge("too big")), what="w", label="c")
    assert isinstance(big, AnswerTooLarge)
    odd = classify(AttributeError("'str' object has no attribute 'get'"), what="w", label="c")
    assert isinstance(odd, MalformedAnswer)


def test_messages_never_quote_the_connections_credentials():
    token = "FQoGZXIvYXdzEXAMPLESESSIONTOKENvery-long"
    config = AwsConfig(region_name="eu-west-1", aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key=SECRET,
                       aws_session_token=token)  # fmt: skip
    echo = (
        f"Authorization: AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/eu-west-1/emr/aws4_request, "
        f"SignedHeaders=host, Signature=0123456789abcdef\nX-Amz-Security-Token: {token}\nsecret {SECRET} {token}"
    )
    for code, status in (("UnrecognizedClientException", 400), ("", 401), ("ValidationException", 400), ("", 500)):
        err = classify(client_error(code, status, echo), what="w", label="c", secrets=config.secrets())
        text = str(err)
        assert SECRET not in text and token not in text and "AKIAEXAMPLE" not in text, text
        assert "0123456789abcdef" not in text


def test_transport_and_credential_errors():
    conn = classify(bex.EndpointConnectionError(endpoint_url="https://emr"), what="w", label="c")
    assert isinstance(conn, TransientError) and conn.connect_failed
    read = classify(bex.ReadTimeoutError(endpoint_url="https://emr"), what="w", label="c")
    assert isinstance(read, TransientError) and not read.connect_failed
    tls = classify(bex.SSLError(endpoint_url="https://emr", error="cert"), what="w", label="c")
    assert isinstance(tls, PermanentError) and "TLS" in str(tls)
    assert isinstance(classify(bex.NoCredentialsError(), what="w", label="c"), AuthError)
    bad = classify(bex.ParamValidationError(report="Invalid length for Name"), what="w", label="c")
    assert isinstance(bad, PermanentError) and "Invalid length" in str(bad)


# --- configuration --------------------------------------------------------------------------------------


def test_poller_key_is_the_endpoint_identity_and_holds_no_credential():
    rotated = AwsConfig(
        region_name="eu-west-1", aws_access_key_id="AKIAROTATED0000000000", aws_secret_access_key="other-secret"
    )
    for text in (repr(CONFIG), CONFIG.client_key("emr"), CONFIG.credentials_key()):
        assert SECRET not in text and "AKIAEXAMPLE" not in text
    # the same connection before and after a key rotation: one poller (which then takes the new client) ...
    assert CONFIG.client_key("emr") == rotated.client_key("emr")
    assert EmrStepClient(CONFIG).key == EmrStepClient(rotated).key
    # ... but a new pooled aiobotocore client, signing with the new keys
    assert CONFIG.pool_key("emr") != rotated.pool_key("emr")
    assert CONFIG.client_key("emr") != CONFIG.client_key("emr-serverless")
    assert CONFIG.client_key("emr") == AwsConfig(**{**CONFIG.__dict__}).client_key("emr")
    # another connection (maybe another account at the same endpoint) never shares a poller
    assert CONFIG.client_key("emr") != AwsConfig(**{**CONFIG.__dict__, "label": "aws_other"}).client_key("emr")
    assert set(CONFIG.secrets()) == {"AKIAEXAMPLE", SECRET}


def test_config_validation():
    with pytest.raises(ValueError, match="both the access key id and the secret"):
        AwsConfig(aws_access_key_id="AKIA")
    with pytest.raises(ValueError, match="http"):
        AwsConfig(endpoint_url="ftp://x")
    cfg = AwsConfig(endpoint_url="http://a", service_endpoints={"sts": "http://b"})
    assert cfg.endpoint_for("emr") == "http://a" and cfg.endpoint_for("sts") == "http://b"
    assert AwsConfig(region_name="cn-north-1").console_domain() == "console.amazonaws.cn"
    assert AwsConfig(region_name="us-gov-west-1").console_domain() == "console.amazonaws-us-gov.com"


# --- names carry the token ------------------------------------------------------------------------------


def test_names_carry_the_token_within_each_services_rules():
    assert named("etl", TOKEN) == f"etl [{TOKEN}]"
    long = named("x" * 400, TOKEN)
    assert len(long) == 256 and long.endswith(f" [{TOKEN}]")
    eks = eks_name("My ETL job (daily)!" + "y" * 80, TOKEN)
    assert len(eks) <= 64 and eks.endswith(f"-{TOKEN}")
    assert re.fullmatch(r"[\.\-_/#A-Za-z0-9]+", eks)
    assert eks_name("!!!", TOKEN) == f"job-{TOKEN}"


def test_requests_carry_token_in_name_tag_and_client_token():
    step = EmrStep(cluster_id="j-ABC123", name="etl", args=["spark-submit", 1], properties={"a": 1})
    body = step.request(TOKEN)
    assert body["Name"] == f"etl [{TOKEN}]"
    assert body["HadoopJarStep"] == {
        "Jar": "command-runner.jar",
        "Args": ["spark-submit", "1"],
        "Properties": [{"Key": "a", "Value": "1"}],
    }
    cluster = EmrCluster(
        name="c", job_flow={"Instances": {"InstanceCount": 1}, "Tags": [{"Key": TOKEN_TAG, "Value": "x"}]}
    )
    cbody = cluster.request(TOKEN)
    assert cbody["Name"] == f"c [{TOKEN}]" and cbody["Tags"] == [{"Key": TOKEN_TAG, "Value": TOKEN}]
    assert cbody["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True
    sl = EmrServerlessJob(
        application_id="00abc", execution_role_arn="arn:aws:iam::1:role/r", job_driver={"sparkSubmit": {}}, name="n"
    ).request(TOKEN)
    assert sl["clientToken"] == TOKEN and sl["tags"][TOKEN_TAG] == TOKEN and sl["name"].endswith(f"[{TOKEN}]")
    eks = EmrEksJob(
        virtual_cluster_id="vc1",
        name="n",
        execution_role_arn="r",
        release_label="emr-7.1.0-latest",
        job_driver={"a": 1},
    ).request(TOKEN)
    assert eks["clientToken"] == TOKEN and eks["tags"][TOKEN_TAG] == TOKEN and eks["name"] == f"n-{TOKEN}"


def test_specs_refuse_what_would_break_the_protocol():
    with pytest.raises(ValueError, match="cluster id"):
        EmrStep(cluster_id="{{ bad }}", name="x")
    with pytest.raises(ValueError, match="action_on_failure"):
        EmrStep(cluster_id="j-ABC", name="x", action_on_failure="EXPLODE")
    with pytest.raises(ValueError, match="cluster name"):
        EmrCluster(name="c", job_flow={"Name": "mine", "Instances": {}})
    with pytest.raises(ValueError, match="clientToken"):
        EmrServerlessJob(
            application_id="app", execution_role_arn="r", job_driver={"a": 1}, name="n", extra={"clientToken": "x"}
        )
    with pytest.raises(ValueError, match="job template"):
        EmrEksJob(virtual_cluster_id="vc", name="n")
    EmrEksJob(virtual_cluster_id="vc", name="n", extra={"jobTemplateId": "tpl1"})


# --- locators read back from the store ------------------------------------------------------------------


LOCATORS = [
    (EmrStepClient(CONFIG), {"cluster_id": "j-1ABC", "step_id": "s-2DEF"}, {"cluster_id": "j-1", "step_id": "../x"}),
    (EmrClusterClient(CONFIG), {"cluster_id": "j-1ABC"}, {"cluster_id": "j-1/../../x"}),
    (
        EmrServerlessClient(CONFIG),
        {"application_id": "00a1", "job_run_id": "00b2"},
        {"application_id": "A", "job_run_id": "b"},
    ),
    (
        EmrEksClient(CONFIG),
        {"virtual_cluster_id": "vc1", "job_run_id": "r1"},
        {"virtual_cluster_id": "v", "job_run_id": "r/1"},
    ),
]


@pytest.mark.parametrize(("client", "good", "bad"), LOCATORS)
def test_locators_are_validated_before_any_request(client, good, bad):
    assert client.validate_locator(good) == good
    with pytest.raises(RecordError):
        client.validate_locator(bad)
    with pytest.raises(RecordError):
        client.validate_locator({**good, "extra": "x"})


# --- states: every state AWS defines is mapped ----------------------------------------------------------


def _enum(service: str, shape: str) -> list[str]:
    return list(botocore.session.get_session().get_service_model(service).shape_for(shape).enum)


def test_every_aws_state_is_mapped_and_cancel_pending_is_still_running():
    assert set(_enum("emr", "StepState")) == set(STEP_STATES)
    assert set(_enum("emr", "ClusterState")) == {*CLUSTER_STATES, "TERMINATED"}  # TERMINATED: by reason code
    assert set(_enum("emr-serverless", "JobRunState")) == set(EmrServerlessClient.states)
    assert set(_enum("emr-containers", "JobRunState")) == set(EmrEksClient.states)
    assert STEP_STATES["CANCEL_PENDING"] is JobState.RUNNING
    assert EmrEksClient.states["CANCEL_PENDING"] is JobState.RUNNING
    assert EmrServerlessClient.states["CANCELLING"] is JobState.RUNNING
    for client in (EmrServerlessClient, EmrEksClient):
        active = {s for s, st in client.states.items() if st.is_active}
        assert set(client.active_states) == active, client


def test_join_uri_and_console_links():
    assert join_uri("s3://b/logs", "j-1", "steps", "s-2") == "s3://b/logs/j-1/steps/s-2/"
    client = EmrStepClient(CONFIG)
    assert client.cluster_url("j-1") == "https://console.aws.amazon.com/emr/home?region=eu-west-1#/clusterDetails/j-1"
    assert client.s3_console_url("s3://b/logs/x/") == (
        "https://console.aws.amazon.com/s3/buckets/b?region=eu-west-1&prefix=logs/x/"
    )
    assert client.s3_console_url("hdfs:///x") is None
