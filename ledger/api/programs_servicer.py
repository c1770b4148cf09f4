"""loyalty.v1.Programs: thin handlers for program settings, tiers, campaigns, rewards and segments."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING


from ledger.api import program_requests, responses
from ledger.api.call_guard import current_caller
from ledger.api.fields import Fields
from loyalty.v1 import programs_pb2, programs_pb2_grpc, webhooks_pb2
from ledger.domain import events as event_rules
from ledger.service import campaigns, liability, programs, referrals, rewards, segments, tiers, webhooks

if TYPE_CHECKING:  # the port's type only: the api layer imports nothing of the store
    from ledger.store.database import Database



def _id(value: str) -> str:
    fields = Fields()
    checked = fields.identifier("campaign_id", value, max_length=64)
    fields.done()
    return checked


_OUTCOMES = {
    "delivered": webhooks_pb2.DELIVERY_OUTCOME_DELIVERED,
    "retrying": webhooks_pb2.DELIVERY_OUTCOME_RETRYING,
    "failed": webhooks_pb2.DELIVERY_OUTCOME_FAILED,
}


def _checked(request):
    """No control character in any of a webhook request's strings (INVALID_FIELD); the rest
    is checked by ledger.service.webhooks."""
    fields = Fields()
    fields.no_control_characters(request)
    fields.done()
    return request


def _micros_timestamp(micros: int):
    return responses.timestamp(datetime.fromtimestamp(micros / 1e6, timezone.utc))


def _webhook(view) -> webhooks_pb2.Webhook:
    row = view.row
    return webhooks_pb2.Webhook(
        webhook_id=row.webhook_id,
        url=row.url,
        event_types=list(row.event_types),
        description=row.description,
        signing_secret=view.secret,
        create_time=_micros_timestamp(row.created_at),
        last_event_id=event_rules.event_id(row.cursor) if row.cursor else "",
        retrying_count=view.retrying,
        failed_count=view.failed,
    )


def _delivery(attempt) -> webhooks_pb2.WebhookDelivery:
    return webhooks_pb2.WebhookDelivery(
        event_id=event_rules.event_id(attempt.position),
        event_type=attempt.event_type,
        attempt=attempt.attempt,
        attempt_time=_micros_timestamp(attempt.attempted_at),
        http_status=attempt.http_status,
        latency_ms=attempt.latency_ms,
        error=attempt.error,
        outcome=_OUTCOMES[attempt.outcome],
    )


class ProgramsServicer(programs_pb2_grpc.ProgramsServicer):
    def __init__(self, db: Database) -> None:
        self._db = db

    def GetProgram(self, request, context):
        settings = programs.get_program(self._db, current_caller())
        return programs_pb2.GetProgramResponse(program=responses.program(settings))

    def UpdateProgram(self, request, context):
        changes = program_requests.program_changes(request)
        settings = programs.update_program(self._db, current_caller(), changes)
        return programs_pb2.UpdateProgramResponse(program=responses.program(settings))

    def GetLiabilityReport(self, request, context):
        as_of = program_requests.liability(request)
        report = liability.report_for(self._db, current_caller(), as_of)
        return programs_pb2.GetLiabilityReportResponse(report=responses.liability(report))

    def SetTiers(self, request, context):
        definitions, mutation = program_requests.tiers(request)
        saved = tiers.set_tiers(self._db, current_caller(), definitions, mutation)
        return programs_pb2.SetTiersResponse(tiers=[responses.tier(t) for t in saved])

    def ListTiers(self, request, context):
        return programs_pb2.ListTiersResponse(tiers=[responses.tier(t) for t in tiers.list_tiers(self._db, current_caller())])

    def CreateCampaign(self, request, context):
        rule, time_zone, mutation = program_requests.create_campaign(request)
        report = campaigns.create_campaign(self._db, current_caller(), rule, time_zone, mutation)
        return programs_pb2.CreateCampaignResponse(campaign=responses.campaign(report))

    def UpdateCampaign(self, request, context):
        campaign_id, changes = program_requests.campaign_changes(request)
        report = campaigns.update_campaign(self._db, current_caller(), campaign_id, changes)
        return programs_pb2.UpdateCampaignResponse(campaign=responses.campaign(report))

    def GetCampaign(self, request, context):
        report = campaigns.get_campaign(self._db, current_caller(), _id(request.campaign_id))
        return programs_pb2.GetCampaignResponse(campaign=responses.campaign(report))

    def ListCampaigns(self, request, context):
        size, token, state = program_requests.list_campaigns(request)
        page, next_token = campaigns.list_campaigns(self._db, current_caller(), token, size, state)
        return programs_pb2.ListCampaignsResponse(
            campaigns=[responses.campaign(r) for r in page], next_page_token=next_token
        )

    def PauseCampaign(self, request, context):
        report = campaigns.pause_campaign(self._db, current_caller(), _id(request.campaign_id))
        return programs_pb2.PauseCampaignResponse(campaign=responses.campaign(report))

    def CreateReward(self, request, context):
        reward, mutation = program_requests.create_reward(request)
        created = rewards.create_reward(self._db, current_caller(), reward, mutation)
        return programs_pb2.CreateRewardResponse(reward=responses.reward(created))

    def ListRewards(self, request, context):
        size, token = program_requests.list_rewards(request)
        page, next_token = rewards.list_rewards(self._db, current_caller(), token, size)
        return programs_pb2.ListRewardsResponse(rewards=[responses.reward(r) for r in page], next_page_token=next_token)

    def GetReferralReport(self, request, context):
        return programs_pb2.GetReferralReportResponse(**referrals.report(self._db, current_caller()))

    def CreateSegment(self, request, context):
        segment, mutation = program_requests.create_segment(request)
        report = segments.create_segment(self._db, current_caller(), segment, mutation)
        return programs_pb2.CreateSegmentResponse(segment=responses.segment(report))

    def UpdateSegment(self, request, context):
        segment_id, changes = program_requests.segment_changes(request)
        report = segments.update_segment(self._db, current_caller(), segment_id, changes)
        return programs_pb2.UpdateSegmentResponse(segment=responses.segment(report))

    def GetSegment(self, request, context):
        report = segments.get_segment(self._db, current_caller(), program_requests.segment_ref(request.segment))
        return programs_pb2.GetSegmentResponse(segment=responses.segment(report))

    def ListSegments(self, request, context):
        size, token = program_requests.list_segments(request)
        page, next_token = segments.list_segments(self._db, current_caller(), token, size)
        return programs_pb2.ListSegmentsResponse(segments=[responses.segment(r) for r in page], next_page_token=next_token)

    def ListSegmentMembers(self, request, context):
        segment, size, token = program_requests.list_segment_members(request)
        page, next_token = segments.list_segment_members(self._db, current_caller(), segment, token, size)
        return programs_pb2.ListSegmentMembersResponse(
            members=[programs_pb2.SegmentMember(member_id=m, enter_time=responses.timestamp(at)) for m, at in page],
            next_page_token=next_token,
        )
    def CreateWebhook(self, request, context):
        _checked(request)
        view = webhooks.create_webhook(
            self._db,
            current_caller(),
            request.url,
            list(request.event_types),
            request.description,
            request.after_event_id,
        )
        return webhooks_pb2.CreateWebhookResponse(webhook=_webhook(view))

    def ListWebhooks(self, request, context):
        _checked(request)
        return webhooks_pb2.ListWebhooksResponse(
            webhooks=[_webhook(v) for v in webhooks.list_webhooks(self._db, current_caller())]
        )

    def DeleteWebhook(self, request, context):
        _checked(request)
        webhooks.delete_webhook(self._db, current_caller(), request.webhook_id)
        return webhooks_pb2.DeleteWebhookResponse()

    def ListWebhookDeliveries(self, request, context):
        _checked(request)
        page, token = webhooks.list_deliveries(
            self._db, current_caller(), request.webhook_id, request.page_token, request.page_size, request.failed_only
        )
        return webhooks_pb2.ListWebhookDeliveriesResponse(deliveries=[_delivery(a) for a in page], next_page_token=token)

    def RedeliverEvents(self, request, context):
        _checked(request)
        requeued, view = webhooks.redeliver(
            self._db, current_caller(), request.webhook_id, request.after_event_id, list(request.event_ids)
        )
        return webhooks_pb2.RedeliverEventsResponse(requeued=requeued, webhook=_webhook(view))
