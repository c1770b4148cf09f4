"""loyalty.v1.Ledger: thin handlers that turn requests into service calls and results into responses.

"""

from __future__ import annotations

from typing import TYPE_CHECKING


from ledger.api import requests, responses
from ledger.api.call_guard import current_caller
from loyalty.v1 import ledger_pb2, ledger_pb2_grpc
from ledger.service import (

    activities,
    directory,
    earn_group_commit,
    earning,
    holds,
    members,
    redemption,
    referrals,
    refunds,
    statement,
    support,
    transfers,
)

if TYPE_CHECKING:  # the port's type only: the api layer imports nothing of the store
    from ledger.store.database import Database


class LedgerServicer(ledger_pb2_grpc.LedgerServicer):
    def __init__(self, db: Database) -> None:
        self._db = db

    def EnrollMember(self, request, context):
        member_id, referral_code, profile = requests.enroll(request)
        enrollment = members.enroll_member(self._db, current_caller(), member_id, referral_code, profile)
        return ledger_pb2.EnrollMemberResponse(
            member=responses.member(enrollment.member), created=enrollment.created
        )

    def GetMember(self, request, context):
        state = members.get_member(self._db, current_caller(), requests.member_id(request))
        return ledger_pb2.GetMemberResponse(member=responses.member(state))

    def Earn(self, request, context):
        command, key = requests.earn(request, key_required=True)
        mutation = requests.mutation("Earn", request, key)
        result = earn_group_commit.earn(self._db, current_caller(), mutation, command)
        return ledger_pb2.EarnResponse(
            transaction=responses.transaction(result.transaction), balance=responses.balance(result.balance)
        )

    def QuoteEarn(self, request, context):
        command, _ = requests.earn(request, key_required=False)
        result = earning.quote_earn(self._db, current_caller(), command)
        return ledger_pb2.QuoteEarnResponse(
            transaction=responses.transaction(result.transaction), balance=responses.balance(result.balance)
        )

    def Redeem(self, request, context):
        command, key = requests.redeem(request)
        mutation = requests.mutation("Redeem", request, key)
        result = redemption.redeem(self._db, current_caller(), mutation, command)
        return ledger_pb2.RedeemResponse(
            transaction=responses.transaction(result.transaction), balance=responses.balance(result.balance)
        )

    def AuthorizeRedemption(self, request, context):
        command, key = requests.authorize(request)
        mutation = requests.mutation("AuthorizeRedemption", request, key)
        result = holds.authorize(self._db, current_caller(), mutation, command)
        return ledger_pb2.AuthorizeRedemptionResponse(
            hold=responses.hold(result.hold), balance=responses.balance(result.balance)
        )

    def CaptureRedemption(self, request, context):
        hold_id, key, points = requests.capture(request)
        mutation = requests.mutation("CaptureRedemption", request, key)
        result = holds.capture(self._db, current_caller(), mutation, hold_id, points)
        return ledger_pb2.CaptureRedemptionResponse(
            transaction=responses.transaction(result.transaction.transaction),
            balance=responses.balance(result.transaction.balance),
            hold=responses.hold(result.hold),
        )

    def VoidRedemption(self, request, context):
        hold_id, key = requests.void(request)
        mutation = requests.mutation("VoidRedemption", request, key)
        result = holds.void(self._db, current_caller(), mutation, hold_id)
        return ledger_pb2.VoidRedemptionResponse(hold=responses.hold(result.hold), balance=responses.balance(result.balance))

    def RefundOrder(self, request, context):
        command, key = requests.refund(request)
        mutation = requests.mutation("RefundOrder", request, key)
        result = refunds.refund_order(self._db, current_caller(), mutation, command)
        return ledger_pb2.RefundOrderResponse(
            transaction=responses.transaction(result.transaction), balance=responses.balance(result.balance)
        )

    def RecordActivity(self, request, context):
        command, key = requests.activity(request)
        mutation = requests.mutation("RecordActivity", request, key)
        result = activities.record_activity(self._db, current_caller(), mutation, command)
        return ledger_pb2.RecordActivityResponse(
            transaction=responses.transaction(result.transaction), balance=responses.balance(result.balance)
        )

    def AdjustPoints(self, request, context):
        member_id, key, points, reason = requests.adjust(request)
        mutation = requests.mutation("AdjustPoints", request, key)
        result = support.adjust_points(self._db, current_caller(), mutation, member_id, points, reason)
        return ledger_pb2.AdjustPointsResponse(
            transaction=responses.transaction(result.transaction), balance=responses.balance(result.balance)
        )

    def ReverseTransaction(self, request, context):
        transaction_id, key, reason = requests.reverse(request)
        mutation = requests.mutation("ReverseTransaction", request, key)
        result = support.reverse_transaction(self._db, current_caller(), mutation, transaction_id, reason)
        return ledger_pb2.ReverseTransactionResponse(
            transaction=responses.transaction(result.transaction), balance=responses.balance(result.balance)
        )

    def TransferPoints(self, request, context):
        command, key = requests.transfer(request)
        mutation = requests.mutation("TransferPoints", request, key)
        result = transfers.transfer_points(self._db, current_caller(), mutation, command)
        return ledger_pb2.TransferPointsResponse(
            transaction=responses.transaction(result.sent.transaction),
            balance=responses.balance(result.sent.balance),
            to_transaction=responses.transaction(result.received.transaction),
            to_balance=responses.balance(result.received.balance),
        )

    def UpdateMember(self, request, context):
        member_id, changes = requests.update_member(request)
        summary = directory.update_member(self._db, current_caller(), member_id, changes)
        return ledger_pb2.UpdateMemberResponse(member=responses.member(summary))

    def ListMembers(self, request, context):
        page = directory.list_members(self._db, current_caller(), requests.list_members(request))
        return ledger_pb2.ListMembersResponse(
            members=[responses.member(summary) for summary in page.members], next_page_token=page.next_page_token
        )

    def CloseMember(self, request, context):
        member_id, reason = requests.close_member(request)
        closing = directory.close_member(self._db, current_caller(), member_id, reason)
        return ledger_pb2.CloseMemberResponse(
            member=responses.member(closing.member),
            forfeit_transaction=responses.transaction(closing.forfeit) if closing.forfeit else None,
        )

    def EraseMember(self, request, context):
        member_id, reason = requests.close_member(request)
        closing = directory.erase_member(self._db, current_caller(), member_id, reason)
        return ledger_pb2.EraseMemberResponse(
            member=responses.member(closing.member),
            forfeit_transaction=responses.transaction(closing.forfeit) if closing.forfeit else None,
        )

    def ListReferrals(self, request, context):
        member_id, size, token = requests.referrals(request)
        page = referrals.list_referrals(self._db, current_caller(), member_id, size, token)
        return ledger_pb2.ListReferralsResponse(
            referrals=[responses.referral(view) for view in page.referrals],
            next_page_token=page.next_page_token,
            referral_code=page.referral_code,
        )

    def ListTransactions(self, request, context):
        page = statement.list_transactions(self._db, current_caller(), requests.statement(request))
        return ledger_pb2.ListTransactionsResponse(
            transactions=[responses.transaction(view) for view in page.transactions],
            next_page_token=page.next_page_token,
        )
